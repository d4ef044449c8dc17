"""Data parallel and fully sharded training on 2 CPU processes (gloo).

DDP: ranks see different data and end with identical weights and EMA. FSDP: each V2ANet (network and
EMA copy) and each transformer block is its own FSDP unit, so the EMA's local shards line up with the
network's and its update is a local lerp on shards; the result must equal the DDP run's weights and EMA
(same data, same noise) up to float noise. Misaligned shards would average the wrong elements.
"""

import pytest

from tests.distributed import max_difference, run_two_processes

FSDP_ON_CPU = ["trainer=fsdp", "trainer.strategy._target_=tests.helpers.CPUFSDPStrategy"]


@pytest.fixture(scope="module")
def ddp_run(tiny_shards, tmp_path_factory):
    return run_two_processes(tiny_shards, tmp_path_factory.mktemp("ddp"), "ddp", ["trainer=ddp"])


@pytest.fixture(scope="module")
def fsdp_run(tiny_shards, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdp")
    return folder, *run_two_processes(tiny_shards, folder, "fsdp", FSDP_ON_CPU)


@pytest.mark.slow
def test_ddp_ranks_split_data_and_agree(ddp_run):
    ranks, _ = ddp_run
    assert all(r["world_size"] == 2 for r in ranks)
    assert len(ranks[0]["keys"]) == len(ranks[1]["keys"]) == 4 * 8  # equal batch counts per rank
    assert ranks[0]["keys"] != ranks[1]["keys"]  # different data on each rank
    overlap = set(ranks[0]["keys"]) & set(ranks[1]["keys"])
    assert len(overlap) < len(ranks[0]["keys"]) / 2
    assert ranks[0]["net"] == ranks[1]["net"]  # gradients all-reduced: identical weights
    assert ranks[0]["ema"] == ranks[1]["ema"]


@pytest.mark.slow
def test_fsdp_matches_ddp_including_the_ema(ddp_run, fsdp_run):
    ddp_records, ddp_weights = ddp_run
    _, fsdp_records, fsdp_weights = fsdp_run
    assert [r["keys"] for r in fsdp_records] == [r["keys"] for r in ddp_records]  # same data as DDP
    # gathered (full) weights are whole tensors, identical on both ranks
    assert fsdp_records[0]["net"] == fsdp_records[1]["net"] and fsdp_records[0]["ema"] == fsdp_records[1]["ema"]
    net, ema = fsdp_weights[0]["net"], fsdp_weights[0]["ema"]
    assert max_difference(net, ddp_weights[0]["net"]) < 1e-4
    assert max_difference(ema, ddp_weights[0]["ema"]) < 1e-4
    # the EMA really is an average (not a copy of the network)
    assert max_difference({k: v for k, v in ema.items() if k.startswith("module.")},
                          {f"module.{k}": v for k, v in net.items()}) > 1e-6


@pytest.mark.slow
def test_fsdp_checkpoint_and_export_load_for_inference(fsdp_run):
    from v2a.pipeline import V2APipeline

    folder, _, weights = fsdp_run
    ema = {k[len("module."):]: v for k, v in weights[0]["ema"].items() if k.startswith("module.")}
    for source in (folder / "fsdp" / "checkpoints" / "last.ckpt", folder / "fsdp" / "export"):
        assert max_difference(V2APipeline.from_pretrained(source).net.state_dict(), ema) == 0.0


@pytest.mark.slow
def test_fsdp_resume_from_a_mid_run_checkpoint_gives_the_same_weights(tiny_shards, fsdp_run, tmp_path):
    folder, _, weights = fsdp_run
    middle = folder / "fsdp" / "checkpoints" / "step_0000002.ckpt"
    records, resumed = run_two_processes(tiny_shards, tmp_path, "resumed", [*FSDP_ON_CPU, f"ckpt_path={middle}"])
    assert len(records[0]["keys"]) == 2 * 8  # only the remaining steps were trained
    assert max_difference(resumed[0]["net"], weights[0]["net"]) == 0.0  # exact: optimizer state restored
    assert max_difference(resumed[0]["ema"], weights[0]["ema"]) == 0.0
