"""``analyze --engine dask``: the same tables as a local run, on a Dask cluster the test starts."""

from __future__ import annotations

import json

import pytest

from biofeedback.cli import main

from test_analyze_batch import make_bad_files, make_good_files

distributed = pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed")


@pytest.fixture(scope="module")
def cluster():
    # Two single-threaded worker processes on this machine, no dashboard: as a real cluster would run the
    # files (each task pickled to another process), small enough for a 2-core CI machine.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as c:
        yield c


def test_dask_cluster_gives_the_tables_of_a_local_run(tmp_path, cluster, capsys):
    make_good_files(tmp_path / "data")
    make_bad_files(tmp_path / "data" / "bad")
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(["analyze", str(tmp_path / "data"), "--no-report", "--quiet", "--out", str(local)]) == 2
    status = main(["analyze", str(tmp_path / "data"), "--engine", "dask", "--scheduler", cluster.scheduler_address,
                   "--json", "--out", str(remote)])
    assert status == 2  # the bad files fail there too
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] >= 5 and report["analysed"] >= 2
    for name in ("events.csv", "summary.csv", "errors.csv"):
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    assert (remote / "report.html").exists()


def test_dask_without_address_starts_its_own_cluster(tmp_path, capsys):
    make_good_files(tmp_path / "data")
    (tmp_path / "data" / "sub").rename(tmp_path / "elsewhere")  # one file is enough here
    status = main(["analyze", str(tmp_path / "data"), "--engine", "dask", "--jobs", "1", "--no-report", "--json",
                   "--out", str(tmp_path / "dask")])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["analysed"] == 1


def test_scheduler_needs_the_dask_engine(tmp_path, capsys):
    status = main(["analyze", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o")])
    assert status == 2
    assert "--engine dask" in capsys.readouterr().err
