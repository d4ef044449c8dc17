"""Mixed synthetic scenes: each kind's recorded ground truth matches what is drawn and what is heard."""

import numpy as np
import pytest

from v2a.data.synthetic import draw
from v2a.data.synthetic.base import frame_rms
from v2a.data.synthetic.captions import NEGATIVES
from v2a.data.synthetic.fan import BLADE, FanSource
from v2a.data.synthetic.impact_source import ImpactSource
from v2a.data.synthetic.impacts import FLOOR
from v2a.data.synthetic.lamp import LIT, LampSource
from v2a.data.synthetic.materials import MATERIALS
from v2a.data.synthetic.music import MusicBed, is_warm
from v2a.data.synthetic.rain import DROP, RainSource
from v2a.data.synthetic.scene import Kind, Scene, render_scene
from v2a.shapes import ClipSpec

SPEC = ClipSpec()  # 2 s, 25 fps, 16 kHz, 32 px
FRAME = 1 / SPEC.fps


def _solo(source, seed: int, spec: ClipSpec = SPEC, **others):
    kinds = {source.kind: Kind(1.0, source), **{k: Kind(1.0, s) for k, s in others.items()}}
    return render_scene(np.random.default_rng(seed), spec, Scene(kinds=kinds))


def _info(clip, kind: str) -> dict:
    return next(s for s in clip.meta["sources"] if s["kind"] == kind)


def _onset(audio: np.ndarray, sr: int, around: float, search: float = 2 * FRAME) -> float:
    """Time of the steepest rise of log energy (10 ms windows, 2.5 ms hops) within ``search`` of ``around``."""
    hop, win = int(0.0025 * sr), int(0.01 * sr)  # windows longer than a low note's period
    lo = max(0, int((around - search) * sr) - win)
    hops = (int(2 * search * sr) + win) // hop
    energy = np.array([np.mean(audio[lo + k * hop:lo + k * hop + win] ** 2) for k in range(hops)])
    rise = int(np.argmax(np.diff(np.log(energy + 1e-10)))) + 1
    return (lo + rise * hop + win) / sr  # a sharp onset first enters a window at its end


def _colour_mask(frames: np.ndarray, colour) -> np.ndarray:
    return (np.abs(frames.astype(int) - np.array(colour, dtype=int)).sum(-1) == 0)


def test_masks_cover_the_expected_pixels():
    assert draw.rectangle(8, 8, 2, 3, 5, 7).sum() == 3 * 4
    assert draw.disc(9, 9, (4.0, 4.0), 1.0).sum() == 4  # the 2x2 pixels around a pixel corner
    line = draw.segment(10, 10, (4.5, 1), (4.5, 9), 0.9)
    assert line[4].sum() == 8 and line.sum() == 8


def test_scene_is_a_pure_function_of_the_seed():
    scene = Scene(kinds={"music": Kind(1.0, MusicBed()), "impacts": Kind(1.0, ImpactSource()),
                         "fan": Kind(1.0, FanSource()), "lamp": Kind(0.5, LampSource()), "rain": Kind(0.5, RainSource())})
    a, b, c = (render_scene(np.random.default_rng(s), SPEC, scene) for s in (5, 5, 6))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.meta == b.meta
    assert not np.array_equal(a.audio, c.audio)
    assert a.frames.dtype == np.uint8 and a.frames.shape == (SPEC.n_video_frames, 32, 32, 3)
    assert a.audio.dtype == np.float32 and a.audio.shape == (SPEC.n_samples,) and np.abs(a.audio).max() <= 0.95 + 1e-6
    assert a.meta["kinds"][0] == "music" and set(a.meta["kinds"]) >= {"music", "impacts", "fan"}


def test_choose_keeps_at_most_max_tiled_and_always_one_tiled_kind():
    kinds = {k: Kind(1.0, s) for k, s in (("impacts", ImpactSource()), ("fan", FanSource()), ("lamp", LampSource()),
                                          ("rain", RainSource()))}
    assert all(len(Scene(kinds=kinds, max_tiled=2).choose(np.random.default_rng(s))) == 2 for s in range(10))
    sparse = Scene(kinds={"music": Kind(0.0, MusicBed()), "fan": Kind(0.01, FanSource())})
    assert all(sparse.choose(np.random.default_rng(s)) == ["fan"] for s in range(10))
    with pytest.raises(ValueError, match="tiled kind"):
        Scene(kinds={"music": Kind(1.0, MusicBed())})
    with pytest.raises(ValueError, match="probability"):
        Scene(kinds={"fan": Kind(1.5, FanSource())})


def test_impact_onsets_within_one_frame_and_drawn_on_the_floor_in_a_quadrant():
    spec = ClipSpec(image_size=64)
    checked = 0
    for seed in range(6):
        clip = _solo(ImpactSource(max_objects=1), seed, spec, lamp=LampSource(level=0.0))  # a silent neighbour
        row, col, side = _info(clip, "impacts")["tile"]
        assert side == 32
        tile = clip.frames[:, row:row + side, col:col + side]
        colour = next(m.colour for m in MATERIALS if m.name == clip.meta["materials"][0])
        floor_row = int(FLOOR * side)
        for event in (e for e in clip.meta["events"] if e["kind"] == "impact"):
            if event["speed"] < 1.0 or event["time"] > spec.duration - 3 * FRAME:
                continue
            assert abs(_onset(clip.audio, spec.sample_rate, event["time"]) - event["time"]) <= FRAME, (seed, event)
            frame = int(round(event["time"] * spec.fps))
            rows = [np.nonzero(_colour_mask(tile[f], colour).any(1))[0] for f in range(frame - 1, frame + 2)]
            assert any(len(r) and r.max() >= floor_row - 2 for r in rows), (seed, event)
            checked += 1
    assert checked >= 8


def test_fan_pitch_loudness_and_drawn_rotation_follow_the_recorded_speed():
    sr = SPEC.sample_rate
    for seed in range(2):
        clip = _solo(FanSource(), seed)
        info = _info(clip, "fan")
        rps, pitch = np.array(info["rps"]), np.array(info["pitch_hz"])
        assert np.allclose(pitch, info["base_hz"] + info["hz_per_rps"] * rps, atol=0.05)
        # heard pitch: the spectral peak of a 64 ms window at each frame time
        errors = []
        for f in range(2, SPEC.n_video_frames - 2):
            if rps[f] < 0.5:
                continue
            at = int(f * FRAME * sr)
            window = clip.audio[at - 512:at + 512] * np.hanning(1024)
            spectrum = np.abs(np.fft.rfft(window, 1 << 15))
            freqs = np.fft.rfftfreq(1 << 15, 1 / sr)
            band = (freqs > 60) & (freqs < 500)
            errors.append(abs(freqs[band][np.argmax(spectrum[band])] - pitch[f]) / pitch[f])
        assert len(errors) > 20 and np.median(errors) < 0.03 and np.mean(np.array(errors) < 0.08) > 0.9
        # heard loudness grows with speed
        loud = frame_rms(clip.audio.astype(np.float64), sr, SPEC.fps, SPEC.n_video_frames)
        assert np.corrcoef(loud, rps)[0, 1] > 0.8
        # seen speed: the blade's angle (from its pixels) advances by 2 pi rps / fps per frame
        rows, cols = np.mgrid[0:32, 0:32] + 0.5
        angles = []
        for frame in clip.frames:
            blade = _colour_mask(frame, BLADE)
            angles.append(np.arctan2(cols[blade].mean() - 16, -(rows[blade].mean() - 16)))
        seen = np.angle(np.exp(1j * np.diff(angles)))
        expected = 2 * np.pi * (rps[:-1] + rps[1:]) / 2 / SPEC.fps
        assert np.abs(seen - expected).mean() < 0.03 and np.abs(seen - expected).max() < 0.1


def test_lamp_hums_exactly_while_drawn_lit():
    sr, checked_switches = SPEC.sample_rate, 0
    for seed in range(6):
        clip = _solo(LampSource(), seed)
        info = _info(clip, "lamp")
        drawn = _colour_mask(clip.frames, LIT).any(axis=(1, 2))
        assert drawn.tolist() == [bool(v) for v in info["lit"]]
        switches = [e["time"] for e in clip.meta["events"]]
        t = np.arange(int(FRAME * sr)) / sr
        probe = np.exp(-2j * np.pi * info["hum_hz"] * t)
        hum = np.array([abs(clip.audio[int(f * FRAME * sr):int(f * FRAME * sr) + len(t)] @ probe) / len(t)
                        for f in range(SPEC.n_video_frames)])
        near_switch = np.array([any(abs(f * FRAME - s) < 1.5 * FRAME for s in switches) for f in range(len(hum))])
        lit, dark = hum[drawn & ~near_switch], hum[~drawn & ~near_switch]
        if len(dark):
            assert lit.min() > 10 * dark.max(), seed
        assert len(lit) and lit.min() > 0.005
        for event in clip.meta["events"]:  # the drawn state flips at the event's frame
            f = int(np.floor(event["time"] * SPEC.fps))
            if f + 1 < SPEC.n_video_frames:
                assert drawn[f + 1] == (event["kind"] == "switch_on") and drawn[max(f, 0)] != drawn[f + 1]
                checked_switches += 1
    assert checked_switches >= 3


def test_rain_sound_density_follows_the_drawn_splashes():
    sr = SPEC.sample_rate
    for seed in range(3):
        clip = _solo(RainSource(), seed)
        info = _info(clip, "rain")
        splashes, falling = np.array(info["splashes"]), np.array(info["falling"])
        drawn_drops = _colour_mask(clip.frames, DROP).sum(axis=(1, 2))
        assert np.corrcoef(drawn_drops, falling)[0, 1] > 0.9
        energy = frame_rms(clip.audio.astype(np.float64), sr, SPEC.fps, SPEC.n_video_frames) ** 2
        # 5-frame windows: a plink lasts ~30 ms and may spill into the next frame
        windows = slice(0, SPEC.n_video_frames // 5 * 5)
        heard = energy[windows].reshape(-1, 5).sum(1)
        seen = splashes[windows].reshape(-1, 5).sum(1)
        assert np.corrcoef(heard, seen)[0, 1] > 0.7
        assert energy[splashes == 0].mean() < energy[splashes >= 2].mean()


def test_music_notes_flash_on_their_beats_and_mode_follows_colour():
    sr = SPEC.sample_rate
    modes = set()
    for seed in range(6):
        clip = _solo(MusicBed(), seed, fan=FanSource(level=0.0))  # the bed needs a tiled companion; a silent one
        info = _info(clip, "music")
        notes = [e for e in clip.meta["events"] if e["kind"] == "note"]
        assert len(notes) >= 2 and np.allclose(np.diff([n["time"] for n in notes]), 60 / info["bpm"], atol=2e-4)
        brightness = clip.frames.reshape(len(clip.frames), -1).mean(1)
        for note in notes:
            if note["time"] < 2 * FRAME or note["time"] > SPEC.duration - 3 * FRAME:
                continue
            assert abs(_onset(clip.audio, sr, note["time"]) - note["time"]) <= FRAME
            f = int(np.floor(note["time"] * SPEC.fps))
            assert brightness[f] > 1.3 * brightness[f - 1]  # the background flashes in the note's frame
        assert info["mode"] == ("major" if is_warm(info["hue"]) else "minor")
        # the pad holds the chord: its third is the major or minor one the colour asks for
        spectrum = np.abs(np.fft.rfft(clip.audio * np.hanning(len(clip.audio))))
        freqs = np.fft.rfftfreq(len(clip.audio), 1 / sr)
        major, minor = (spectrum[np.abs(freqs - info["root_hz"] * 2 ** (s / 12)) < 1.5].max() for s in (4, 3))
        assert (major > 3 * minor) if info["mode"] == "major" else (minor > 3 * major)
        modes.add(info["mode"])
    assert modes == {"major", "minor"}


def test_negative_captions_never_name_an_audible_source():
    scene = Scene(kinds={"music": Kind(0.5, MusicBed()), "impacts": Kind(0.6, ImpactSource()),
                         "fan": Kind(0.4, FanSource()), "lamp": Kind(0.4, LampSource()), "rain": Kind(0.4, RainSource())})
    named = {"music": {"music"}, "fan": {"fan"}, "lamp": {"lamp", "hum"}, "rain": {"rain", "water"}}
    tags = dict(NEGATIVES)
    negatives = set()
    for seed in range(40):
        clip = render_scene(np.random.default_rng(seed), SPEC, scene)
        negative = clip.meta["negative_caption"]
        assert negative in tags
        present = set(clip.meta["materials"]).union(*(named.get(k, set()) for k in clip.meta["kinds"]))
        assert not tags[negative] & present, (seed, negative, present)
        assert not set(negative.split()) & present, (seed, negative, present)
        for kind in clip.meta["kinds"]:  # and the caption names what is there
            assert (kind if kind != "impacts" else "bouncing") in clip.meta["caption"]
        negatives.add(negative)
    assert len(negatives) >= 8  # drawn from the whole catalogue, not one fixed phrase
