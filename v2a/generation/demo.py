"""The demo app (``v2a demo --ckpt EXPORT``): a web page where a video gets a generated, watermarked soundtrack.

Upload a video, give a prompt / negative prompt / transcript (the boxes a model reads are shown), choose the
steps, the guidance scale and the seed; the page shows the muxed result, its spectrogram and the watermark
check of the muxed file's audio. Gradio (``pip install 'v2a[demo]'``) is imported only here.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2a.media import decode_audio
from v2a.pipeline.pipeline import V2APipeline
from v2a.utils.plots import plot_mels

log = logging.getLogger(__name__)

TEXT_BOXES = {"prompt": ("Prompt", "what should be heard, e.g. 'a glass object bouncing'"),
              "negative_prompt": ("Negative prompt", "what to avoid, e.g. 'music'"),
              "transcript": ("Transcript", "the dialogue (plain text, or SRT/WebVTT subtitles)")}


def import_gradio() -> Any:
    """Gradio, told to stay offline (no analytics, no update check), or a clear error."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise ImportError("the demo needs Gradio: pip install 'v2a[demo]' (or pip install gradio)") from error
    return gradio


class DemoRunner:
    """One generation as the page asks for it: files in a fresh folder under ``work``."""

    def __init__(self, pipe: V2APipeline, *, work: Path, watermarker: Any) -> None:
        self.pipe = pipe
        self.work = work
        self.watermarker = watermarker

    def __call__(self, video: str | None, prompt: str = "", negative_prompt: str = "", transcript: str = "",
                 steps: float = 8, cfg_scale: float = 3.0, seed: float = 0) -> tuple[str, str, str]:
        """(muxed video, spectrogram png, watermark check) for an uploaded ``video``."""
        if not video:
            raise ValueError("upload a video first")
        texts = {"prompt": prompt, "negative_prompt": negative_prompt, "transcript": transcript}
        texts = {name: (value.strip() or None) if name in self.pipe.text_inputs else None
                 for name, value in texts.items() if isinstance(value, str)}
        folder = Path(tempfile.mkdtemp(prefix="v2a_demo_", dir=self.work))
        result = self.pipe.generate_to(video, folder / f"{Path(video).stem}_v2a.mp4", steps=int(steps),
                                       cfg_scale=float(cfg_scale), seed=int(seed), watermark=self.watermarker, **texts)
        audio, rate = decode_audio(result["video"])  # the muxed file's own (AAC) track: what a listener gets
        mono = audio.mean(axis=0)
        spec = self.pipe.spec
        mel = self.pipe.features(torch.from_numpy(np.ascontiguousarray(mono))[None].float())[0].numpy() \
            if rate == spec.sample_rate else None
        if mel is None:  # an unusual muxer rate: show the written audio file's
            wav, _ = decode_audio(result["audio"])
            mel = self.pipe.features(torch.from_numpy(wav.mean(axis=0))[None].float())[0].numpy()
        png = plot_mels(folder / "spectrogram.png", [("generated soundtrack (log-mel)", mel)], spec.mel_rate)
        check = self.watermarker.detect(mono, rate)
        verdict = "detected" if check.p_value < self.watermarker.fpr else "NOT detected"
        summary = (f"**Watermark {verdict}** in the muxed file's audio: p = {check.p_value:.2g} "
                   f"(threshold {self.watermarker.fpr:g}). Audio {result['duration_s']:.2f} s at "
                   f"{result['sample_rate']} Hz, {result['windows']} window(s), seed {int(seed)}, "
                   f"{result['elapsed_s']:.2f} s.")
        return result["video"], str(png), summary


def build_demo(pipe: V2APipeline, *, work: Path, watermarker: Any = None) -> Any:
    """The Gradio page for ``pipe`` (a ``gradio.Blocks``); results are written under ``work``."""
    gr = import_gradio()
    if watermarker is None:
        from v2a.watermark import Watermarker

        watermarker = Watermarker()
    run = DemoRunner(pipe, work=work, watermarker=watermarker)
    with gr.Blocks(title="v2a: video to audio") as demo:
        gr.Markdown("# v2a: give a video a soundtrack\nUpload a video; the generated audio is watermarked and "
                    "muxed with the video stream copied as it is.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], elem_id="input-video")
                boxes = [gr.Textbox(label=label, placeholder=hint, visible=name in pipe.text_inputs,
                                    elem_id=name.replace("_", "-"))
                         for name, (label, hint) in TEXT_BOXES.items()]
                steps = gr.Slider(1, 64, value=pipe.sampler.steps, step=1, label="Steps", elem_id="steps")
                cfg = gr.Slider(0.0, 10.0, value=pipe.cfg_scale, step=0.1, label="Guidance (CFG) scale", elem_id="cfg")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                result = gr.Video(label="Result (muxed)", elem_id="result-video", interactive=False)
                spectrogram = gr.Image(label="Spectrogram", type="filepath", elem_id="spectrogram", interactive=False)
                check = gr.Markdown(elem_id="watermark-check")
        button.click(run, inputs=[video, *boxes, steps, cfg, seed], outputs=[result, spectrogram, check])
    return demo


def serve(ckpt: str, *, host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          threads: int | None = None, work: str | None = None) -> None:
    """Load the model and serve the demo page until interrupted."""
    gr = import_gradio()
    if threads is not None:
        torch.set_num_threads(threads)
    pipe = V2APipeline.from_pretrained(ckpt, device=device)
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="v2a_demo_"))
    folder.mkdir(parents=True, exist_ok=True)
    demo = build_demo(pipe, work=folder)
    try:
        demo.queue().launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                            allowed_paths=[str(folder)], ssr_mode=False, theme=gr.themes.Default(font=["sans-serif"]))
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)
