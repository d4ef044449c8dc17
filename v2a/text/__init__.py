"""Text as the models take it: one sentencepiece tokenizer wrapper and the text conditioning of a model."""
