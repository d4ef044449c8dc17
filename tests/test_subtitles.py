"""Timed transcripts: SRT / WebVTT parsing and the lines each generation window is given."""

import pytest

from v2a.text.subtitles import Cue, is_subtitles, parse_subtitles, text_for_span, window_transcripts

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there.

2
00:00:04,200 --> 00:00:06,000
General
Kenobi!

3
00:01:02,5 --> 00:01:03,000
{\\an8}Late line
"""

VTT = """WEBVTT - a header line

NOTE this block is a comment
that spans two lines

STYLE
::cue { color: red }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Anna>Hello there.

01:00:00.000 --> 01:00:01.000
An hour in.
"""


def test_srt_cues_have_times_and_clean_text():
    cues = parse_subtitles(SRT)
    assert cues == [Cue(1.0, 2.5, "Hello there."), Cue(4.2, 6.0, "General Kenobi!"), Cue(62.5, 63.0, "Late line")]
    assert is_subtitles(SRT) and not is_subtitles("Hello there. General Kenobi!")


def test_vtt_cues_skip_header_settings_and_markup():
    cues = parse_subtitles(VTT.replace("\n", "\r\n"))   # Windows line ends too
    assert Cue(1.0, 2.5, "Hello there.") in cues and Cue(3600.0, 3601.0, "An hour in.") == cues[-1]
    assert all("<" not in c.text and "align" not in c.text for c in cues)


def test_bad_subtitles_are_clear_errors():
    with pytest.raises(ValueError, match="line 2 ends before it starts"):
        parse_subtitles("1\n00:00:05,000 --> 00:00:04,000\nbackwards\n")
    with pytest.raises(ValueError, match="no cue with text"):
        parse_subtitles("1\n00:00:01,000 --> 00:00:02,000\n\n")


def test_each_window_gets_the_lines_spoken_during_it():
    cues = parse_subtitles(SRT)
    assert text_for_span(cues, 0.0, 1.0) == ""                       # ends exactly where the first begins
    assert text_for_span(cues, 2.0, 4.5) == "Hello there. General Kenobi!"
    # 2 s windows at 25 fps starting at frames 0, 38, 76 (1.52 s overlaps)
    assert window_transcripts(cues, [0, 38, 76], 50, 25.0) == ["Hello there.", "Hello there.", "General Kenobi!"]
