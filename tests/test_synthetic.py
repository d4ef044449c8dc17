import numpy as np

from v2a.data.synthetic import MATERIALS, render_impact_clip
from v2a.data.synthetic.impacts import FLOOR
from v2a.shapes import ClipSpec


def _clip(seed: int, **kwargs):
    return render_impact_clip(np.random.default_rng(seed), ClipSpec(), **kwargs)


def test_same_seed_same_clip_and_different_seed_differs():
    a, b, c = _clip(3), _clip(3), _clip(4)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.meta == b.meta
    assert not np.array_equal(a.audio, c.audio)


def test_every_event_is_a_visible_floor_contact_with_an_audible_onset():
    spec = ClipSpec()
    checked = 0
    for seed in range(12):
        clip = _clip(seed, max_objects=1)
        colour = np.array(MATERIALS[[m.name for m in MATERIALS].index(clip.meta["materials"][0])].colour)
        floor_row = int(FLOOR * spec.image_size)
        for event in clip.meta["events"]:
            frame = int(round(event["time"] * spec.fps))
            if frame >= spec.n_video_frames:
                continue
            # the object touches the floor line at the event's frame (within one frame)
            rows = [np.nonzero((np.abs(clip.frames[f].astype(int) - colour).sum(-1) == 0).any(1))[0]
                    for f in range(max(frame - 1, 0), min(frame + 2, spec.n_video_frames))]
            assert any(len(r) and r.max() >= floor_row - 2 for r in rows), (seed, event)
            # and the audio gets louder right after the event time
            at = int(event["time"] * spec.sample_rate)
            before = np.abs(clip.audio[max(at - 400, 0):at]).mean()
            after = np.abs(clip.audio[at:at + 400]).mean()
            assert after > 3 * before, (seed, event)
            checked += 1
    assert checked >= 10


def test_events_record_material_and_louder_impacts_are_faster():
    for seed in range(20):
        clip = _clip(seed, max_objects=1)
        events = clip.meta["events"]
        if len(events) < 2:
            continue
        assert {e["material"] for e in events} == set(clip.meta["materials"])
        peaks = [np.abs(clip.audio[int(e["time"] * 16000):int(e["time"] * 16000) + 800]).max() for e in events]
        speeds = [e["speed"] for e in events]
        # bounces lose speed, and the sound follows
        assert speeds == sorted(speeds, reverse=True)
        assert peaks[0] > peaks[-1]
        return
    raise AssertionError("no clip with two bounces in 20 seeds")


def test_materials_have_distinct_timbre():
    spectra = {}
    for seed in range(40):
        clip = _clip(seed, max_objects=1)
        material = clip.meta["materials"][0]
        if material in spectra or not clip.meta["events"]:
            continue
        at = int(clip.meta["events"][0]["time"] * 16000)
        segment = clip.audio[at:at + 2048]
        spectrum = np.abs(np.fft.rfft(segment, 2048))
        spectra[material] = (spectrum * np.arange(len(spectrum))).sum() / spectrum.sum()  # spectral centroid bin
    assert len(spectra) >= 3
    centroids = sorted(spectra.values())
    assert min(np.diff(centroids)) > 10  # clearly separated centroids (bins of 7.8 Hz)
