"""A recorded session folder replays with its cues."""

import numpy as np

from biofeedback.cli import main
from biofeedback.live.sources import replay_source
from biofeedback.session.store import load_session


def test_session_folder_replays_with_its_cues(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path / "home"))
    status = main(["session", "--protocol", "glazer", "--source", "sim", "--headless", "--speed", "0",
                   "--duration-scale", "0.1", "--quiet", "--out", str(tmp_path / "sessions")])
    assert status == 0
    folders = [p.parent for p in (tmp_path / "sessions").rglob("session.json")]
    assert len(folders) == 1
    opened = replay_source(folders[0], speed=0)
    with opened.source as source:
        chunks = list(source)
        n = sum(c.n_samples for c in chunks)
        cues = source.cues_between(0, n)
    saved = load_session(folders[0]).recording
    assert np.array_equal(cues, saved.cues)
    assert {"relax", "contract"} <= set(cues.tolist())
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), saved.data)
