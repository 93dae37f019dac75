"""GAN Compression's search: budgets, exhaustive vs evolutionary selection, BatchNorm recalibration, resume, the
candidate table, and candidates shared across ranks."""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import re
import threading

import pytest
import torch

from ganslim.archs import build_generator, init_weights
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator, uniform_channels
from ganslim.checkpoints import save_model
from ganslim.compress import SearchSpace, extract_subnet
from ganslim.compress.space import channel_spans
from ganslim.compress import latency as latency_module
from ganslim.compress.latency import LatencyTable, LatencyTimer
from ganslim.data import make_builtin
from ganslim.engine import DistInfo
from ganslim.engine import distributed
from ganslim.errors import GanslimError
from ganslim.compress.search import Budget, Search, config_key, format_macs, parse_macs
from ganslim.methods.gan_compression import scoring
from ganslim.methods.gan_compression.scoring import CandidateScorer, recalibrate_batchnorm
from ganslim.methods.gan_compression.search import SearchConfig, read_progress, read_result, run_search, search_budget
from ganslim.measure.profile import count_macs, count_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 3 blocks -> 8 positions; 64 configurations.
CANDIDATES = ((8,), (16, 8), (32, 16), (32, 16), (32, 16), (32, 16), (16, 8), (8,))
TINY = dict(load_size=32, crop_size=32, batch_size=2, size=32, recalibration_batches=2, holdout_images=2)


def synthetic_search(budget: Budget, space: SearchSpace | None = None, info: DistInfo = DistInfo(), **kwargs):
    """A search whose score is a fixed function of the widths (fast, no networks); calls are recorded."""
    space = space or SearchSpace.default(uniform_channels(16, 9))
    calls: list[str] = []

    def evaluate(channels):
        calls.append(config_key(channels))
        noise = random.Random(config_key(channels)).random()  # a fixed, width-dependent bumpiness
        return {"psnr": sum(channels) / 10 + 3 * noise}

    return Search(space, budget, evaluate, kwargs.pop("latency", None), "psnr", info, **kwargs), calls


# ---------------------------------------------------------------------------------------------- budgets


def test_macs_budgets_parse_and_print():
    assert parse_macs("3G") == 3_000_000_000 and parse_macs("500M") == 500_000_000
    assert parse_macs("2.5e9") == 2_500_000_000 and parse_macs(" 1.5g MACs") == 1_500_000_000
    assert format_macs(1_408_000_000) == "1.41G" and format_macs(5e8) == "500M"
    for bad in ("3 apples", "", "-1G", "0"):
        with pytest.raises(GanslimError, match="budget"):
            parse_macs(bad)
    with pytest.raises(GanslimError, match="--budget-macs .*, --budget-ms .* or --budget-speedup"):
        search_budget(SearchConfig(data="x"))


def test_an_impossible_budget_is_refused_with_the_smallest_cost():
    space = SearchSpace.default(uniform_channels(64, 9))  # smallest = the ngf-16 student, 1.408G published
    search, calls = synthetic_search(Budget(macs=parse_macs("0.5G"), macs_text="0.5G"), space)
    with pytest.raises(GanslimError) as error:
        search.check_feasible()
    assert str(error.value) == "budget 0.5G MACs is below the smallest sub-network (1.41G published): raise the budget"
    search, _ = synthetic_search(Budget(macs=parse_macs("1.3G"), convention="true"), space)
    search.check_feasible()  # 1.23G true multiply-adds fit
    slow, _ = synthetic_search(Budget(ms=2.0, size=64), space, latency=lambda channels: 5.0)
    with pytest.raises(GanslimError, match=r"budget 2 ms is below the smallest sub-network's latency \(5 ms at "
                                           r"64x64 .*raise the budget"):
        slow.check_feasible()
    assert calls == []


def test_exhaustive_search_finds_the_best_within_a_macs_budget():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    budget = Budget(macs=int(space.predict_macs(space.largest(), 256).macs_published * 0.6))
    search, calls = synthetic_search(budget, space)
    strategy, candidates = search.choose_strategy("auto", limit=500)
    fitting = [c for c in space.enumerate() if space.predict_macs(c, 256).macs_published <= budget.macs]
    assert strategy == "exhaustive" and candidates == fitting and 0 < len(fitting) < space.size()
    best = search.exhaustive(candidates)
    assert sorted(calls) == sorted(config_key(c) for c in fitting)  # every fitting one scored, once, nothing else
    assert best["score"] == max(row["score"] for row in search.rows.values())
    assert best["macs_published"] <= budget.macs and all(row["fits"] for row in search.rows.values())


def test_evolution_respects_the_budget_and_approaches_the_exhaustive_best():
    space = SearchSpace([[16, 12, 8], [32, 24, 16], *[[64, 48, 32]] * 4, [32, 24, 16], [16, 12, 8]])  # 3**8
    budget = Budget(macs=int(space.predict_macs(space.largest(), 256).macs_published * 0.6))
    exhaustive, _ = synthetic_search(budget, space)
    strategy, candidates = exhaustive.choose_strategy("auto", limit=100)
    assert strategy == "evolution" and candidates is None  # too many fit for an exhaustive search
    optimum = exhaustive.exhaustive([c for c in space.enumerate() if exhaustive.fits_macs(c)])["score"]

    evolution, calls = synthetic_search(budget, space)
    best = evolution.evolution(random.Random(0), population=20, parents=0.25, mutation=0.5, mutation_prob=0.3,
                               generations=8)
    assert len(calls) == len(set(calls)) and len(calls) <= 20 + 8 * 15  # nothing scored twice
    assert all(row["fits"] and row["macs_published"] <= budget.macs for row in evolution.rows.values())
    first_generation = max(evolution.rows[key]["score"] for key in calls[:20])
    assert first_generation < best["score"] <= optimum  # evolution improved on its random start
    assert best["score"] > optimum - 0.15 * abs(optimum)


def test_a_macs_and_a_latency_budget_together_must_both_be_met():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    macs = lambda channels: space.predict_macs(channels, 256).macs_published  # noqa: E731
    latency = lambda channels: 100 / channels[2]  # noqa: E731 - a timing that MACs do not predict
    macs_budget = int(macs(space.largest()) * 0.6)
    search, calls = synthetic_search(Budget(macs=macs_budget, ms=100 / 64), space, latency=latency)
    best = search.exhaustive(search.choose_strategy("auto", 500)[1])
    both = [c for c in space.enumerate() if macs(c) <= macs_budget and latency(c) <= 100 / 64]
    assert sorted(calls) == sorted(config_key(c) for c in both) and 0 < len(both)
    assert any(macs(c) <= macs_budget for c in space.enumerate() if c not in both)  # the ms budget binds too
    assert best["macs_published"] <= macs_budget and best["latency_ms"] <= 100 / 64
    assert search.budget.describe() == f"{format_macs(macs_budget)} MACs (published) and 1.56 ms on " \
                                       f"{torch.get_num_threads()} CPU thread(s) at 256x256"


def test_a_speedup_and_a_latency_budget_together_keep_the_stricter_and_say_so():
    speedup = Budget(ms=50.0, speedup=5.0).with_teacher(200.0)
    assert speedup.ms == 40.0 and speedup.ms_given == 50.0
    assert speedup.ms_label == "40 ms (the stricter of 50 ms and 5x faster than the teacher's 200 ms, 40 ms)"
    given = Budget(ms=20.0, speedup=5.0).with_teacher(200.0)
    assert given.ms == 20.0
    assert given.ms_label == "20 ms (the stricter of 20 ms and 5x faster than the teacher's 200 ms, 40 ms)"
    assert Budget(speedup=5.0).with_teacher(200.0).ms_label == "40 ms (5x faster than the teacher's 200 ms)"


def test_latency_budget_measures_and_rejects():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    latency = lambda channels: sum(channels) / 10  # noqa: E731 - a stand-in for the CPU timer
    search, calls = synthetic_search(Budget(ms=28.0), space, latency=latency)
    strategy, candidates = search.choose_strategy("auto", limit=500)
    assert strategy == "exhaustive" and len(candidates) == space.size()  # latency is unknown before measuring
    best = search.exhaustive(candidates)
    over = [row for row in search.rows.values() if not row["fits"]]
    assert over and all(row["latency_ms"] > 28 and row["metrics"] is None for row in over)
    assert len(calls) == space.size() - len(over) and best["latency_ms"] <= 28.0

    evolution, _ = synthetic_search(Budget(ms=28.0), space, latency=latency)
    best = evolution.evolution(random.Random(1), 8, 0.25, 0.5, 0.3, 2)
    assert best["latency_ms"] <= 28.0


def test_a_latency_table_sums_spans_timed_once_and_calibrates_on_whole_models():
    space = SearchSpace.default(uniform_channels(16, 9))
    timed: list[int] = []

    def params_as_ms(span, image):  # a stand-in timer that adds up exactly: parameters of the span
        timed.append(image.shape[1])
        return count_params(span) / 1000

    table = LatencyTable(space, 32, params_as_ms)
    smallest, largest = space.smallest(), space.largest()
    assert table.predict(smallest) == pytest.approx(count_params(MobileResnetGenerator(channels=smallest)) / 1000)
    assert len(timed) == 7  # stem, down1, down2, up1, up2, out and one block: nine equal blocks timed once
    table.predict(smallest)
    assert len(timed) == 7  # known spans are looked up, not timed again
    expected = count_params(MobileResnetGenerator(channels=largest)) / 1000
    assert table.predict(largest) == pytest.approx(expected)
    table.observe(smallest, 2 * table.summed(smallest))  # whole models run twice as slow as their spans say
    table.observe(largest, 3 * table.summed(largest))
    assert table.calibration() == pytest.approx(2.5) and table.predict(largest) == pytest.approx(2.5 * expected)


def test_a_latency_table_fills_every_span_of_the_space_at_once():
    space = SearchSpace([[16, 8], [32, 24, 16], [64, 32], [64, 32], [64, 48, 32], [64, 32], [32, 16], [16, 8]],
                        n_blocks=3)
    every = {key for channels in space.enumerate() for key, _ in channel_spans(channels, space.n_blocks)}
    timed: list[int] = []
    table = LatencyTable(space, 32, lambda span, image: timed.append(1) or count_params(span) / 1000)
    table.predict(space.smallest())
    missing = table.missing_spans()
    assert set(missing) == every - set(table.span_ms) and len(timed) == len(every) - len(missing)
    assert all(key in dict(channel_spans(channels, space.n_blocks)) for key, channels in missing.items())
    counted: list[int] = []
    table.fill(on_span=lambda: counted.append(1))
    assert len(counted) == len(missing) and set(table.span_ms) == every and table.missing_spans() == {}
    before = len(timed)
    for channels in space.enumerate():
        table.predict(channels)
    assert len(timed) == before  # nothing left to time


def test_a_latency_predictor_spares_timing_proposals_far_over_budget():
    space = SearchSpace.default(uniform_channels(16, 9))
    timed: list[str] = []

    def latency(channels):  # a stand-in timer the table predicts exactly: parameters of the whole model
        timed.append(config_key(channels))
        return count_params(MobileResnetGenerator(channels=channels)) / 1000

    table = LatencyTable(space, 32, lambda span, image: count_params(span) / 1000)
    budget_ms = 0.5 * latency(space.largest())
    timed.clear()
    search, _ = synthetic_search(Budget(ms=budget_ms), space, latency=latency, predictor=table)
    search.check_feasible()
    best = search.evolution(random.Random(0), 10, 0.25, 0.5, 0.3, 2)
    assert best["latency_ms"] <= budget_ms and table.calibration() == pytest.approx(1.0)
    measured = [search.rows[key] for key in timed[1:]]  # timed[0]: the smallest, by check_feasible
    assert measured and all(row["latency_predicted_ms"] <= budget_ms for row in measured)
    assert all(row["latency_predicted_ms"] == pytest.approx(row["latency_ms"]) for row in measured)
    assert not search.may_fit(space.largest()) and search.may_fit(space.smallest())


def test_the_latency_timer_reads_the_fastest_rounds_in_the_references_unit(monkeypatch):
    # (warm-up rounds, per-round ms) of each call to interleaved_times: the reference alone (the baseline),
    # then the model and the reference with interruptions in some rounds; a phase where everything runs twice
    # as slow (more rounds, up to MORE_ROUNDS times, since the reference is far from its baseline); and one
    # where the model's fastest run is alone (an interrupted one too) until more rounds find its real time.
    slow = {"model": [8.1] * 4, "reference": [2.1] * 4}
    calls = iter([
        (3, {"reference": [1.2, 1.0, 30.0, 1.1]}),
        (3, {"model": [4.0, 90.0, 4.2, 4.1], "reference": [50.0, 1.0, 1.1, 1.0]}),
        (3, {"model": [8.4, 8.0, 200.0, 8.2], "reference": [2.0, 70.0, 2.2, 2.1]}), (0, slow), (0, slow), (0, slow),
        (3, {"model": [40.0, 90.0, 60.0, 75.0], "reference": [1.0, 1.1, 1.0, 1.0]}),
        (0, {"model": [4.0, 4.1, 50.0, 60.0], "reference": [1.0, 1.0, 1.1, 1.0]}),
    ])

    def fake_interleaved(runners, image, warmup, repeats):
        expected_warmup, times = next(calls)
        assert set(runners) == set(times) and image.shape == (1, 3, 16, 16) and warmup == expected_warmup
        assert repeats == (12 if set(times) == {"reference"} else 4)  # SETTLE_ROUNDS x repeats for the baseline
        for run in runners.values():
            run(image)
        return {name: list(values) for name, values in times.items()}

    monkeypatch.setattr(latency_module, "interleaved_times", fake_interleaved)
    monkeypatch.setattr(latency_module, "_process", {"warm": True})
    timer = LatencyTimer(MobileResnetGenerator(channels=[8, 8, 8, 8, 8, 8, 8, 8]), 16, 1, repeats=4)
    model = MobileResnetGenerator(channels=[8, 16, 16, 16, 16, 16, 16, 8])
    assert timer(model) == 4.0 and timer.baseline_ms == 1.0  # 4x the reference's fastest, in its unit
    assert timer(model) == 4.0  # a slow phase slows both alike
    assert timer(model) == 4.0  # a lone fastest run of 40 ms is timed again
    assert next(calls, None) is None


def test_a_budget_few_random_configurations_meet_starts_from_mutations_of_the_smallest():
    space = SearchSpace.default(uniform_channels(64, 9))  # 390625 configurations
    smallest = space.predict_macs(space.smallest()).macs_published
    search, calls = synthetic_search(Budget(macs=int(smallest * 1.05)), space)
    assert not any(search.fits_macs(space.sample(random.Random(seed))) for seed in range(2000))
    best = search.evolution(random.Random(0), 8, 0.25, 0.5, 0.3, 1)
    assert len(calls) > 1 and all(search.rows[key]["fits"] for key in calls)
    assert best["macs_published"] <= smallest * 1.05


def test_a_lucky_timing_does_not_fit_a_candidate_predicted_over_budget():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    search, _ = synthetic_search(Budget(ms=10.0), space, latency=lambda channels: 9.0)
    row = {"channels": space.smallest(), "macs": 1, "macs_published": 1, "latency_ms": 9.0}
    assert search._fits({**row, "latency_predicted_ms": 9.5}) and search._fits(row)
    assert not search._fits({**row, "latency_predicted_ms": 12.0})
    assert not search._fits({**row, "latency_ms": 11.0, "latency_predicted_ms": 9.5})


def test_a_timing_its_prediction_or_the_peak_doubts_is_timed_again_before_it_can_win():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    params_ms = lambda channels: count_params(MobileResnetGenerator(channels=channels)) / 1000  # noqa: E731
    table = LatencyTable(space, 32, lambda span, image: count_params(span) / 1000)
    largest, lucky = space.largest(), [16, 32, 64, 64, 64, 64, 32, 8]
    retimed: list[str] = []

    def retime(channels):
        retimed.append(config_key(channels))
        return params_ms(channels)

    def latency(channels):  # the lucky configuration reads 10x too fast the first time
        return params_ms(channels) / (10 if channels == lucky else 1)

    budget = Budget(ms=params_ms(largest) * 0.99)
    search, _ = synthetic_search(budget, space, latency=latency, predictor=table, retime=retime)
    search.check_feasible()
    rows = search.evaluate([lucky, space.smallest(), largest])
    assert retimed == [config_key(lucky)]  # only the timing 10x off its prediction
    row = rows[0]
    assert row["latency_first_ms"] == pytest.approx(params_ms(lucky) / 10)
    assert row["latency_ms"] == pytest.approx(params_ms(lucky)) == pytest.approx(row["latency_predicted_ms"])
    assert row["retimed"] == f"{row['latency_first_ms']:.3g} ms measured vs {row['latency_predicted_ms']:.3g} ms predicted"
    assert "latency_first_ms" not in rows[1] and not rows[2]["fits"]

    # Without a prediction, a timing faster than the machine's fp32 peak allows for its true MACs is doubted.
    peak, _ = synthetic_search(budget, space, latency=lambda channels: 1e-3, retime=lambda channels: 50.0,
                               peak_gflops=100.0)
    row = peak.evaluate([lucky])[0]
    gflops = 2 * row["macs"] / 1e-3 / 1e6
    assert row["latency_first_ms"] == 1e-3 and row["latency_ms"] == 50.0  # the second timing counts
    assert row["retimed"] == f"0.001 ms is {gflops:.0f} GFLOP/s, above this machine's fp32 peak of 100 GFLOP/s"


def test_the_search_reports_each_stage_with_what_it_will_evaluate():
    space = SearchSpace([[16, 12, 8], [32, 24, 16], *[[64, 48, 32]] * 4, [32, 24, 16], [16, 12, 8]])
    budget = Budget(macs=int(space.predict_macs(space.largest(), 256).macs_published * 0.6))
    events: list = []
    search, calls = synthetic_search(budget, space, on_stage=lambda label: events.append([label, 0, 0]),
                                     on_pending=lambda count: events[-1].__setitem__(1, events[-1][1] + count),
                                     on_rows=lambda rows: events[-1].__setitem__(2, events[-1][2] + len(rows)))
    search.evolution(random.Random(0), population=10, parents=0.2, mutation=0.5, mutation_prob=0.3, generations=2)
    assert [label for label, _, _ in events] == ["generation 0/2", "generation 1/2", "generation 2/2"]
    assert all(pending == done for _, pending, done in events)  # each stage's total is what it evaluated
    assert events[0][1] == 10 and sum(done for _, _, done in events) == len(calls)


def test_rounds_are_shared_across_ranks_and_gathered(monkeypatch):
    """Two ranks (threads) with an exchanging gather: each scores its share, both end with every row."""
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    slots: dict[int, list] = {}
    barrier = threading.Barrier(2)

    def gather(info, value):
        slots[info.rank] = value
        barrier.wait()
        gathered = [slots[0], slots[1]]
        barrier.wait()
        return gathered

    monkeypatch.setattr(distributed, "gather_objects", gather)
    ranks = [synthetic_search(Budget(macs=parse_macs("100G")), space, DistInfo(rank, 2)) for rank in range(2)]
    results = {}
    threads = [threading.Thread(target=lambda r=rank: results.__setitem__(r, ranks[r][0].exhaustive(
        list(space.enumerate())))) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = [set(ranks[r][1]) for r in range(2)]
    assert not calls[0] & calls[1] and len(calls[0] | calls[1]) == space.size()  # disjoint shares, all covered
    assert abs(len(calls[0]) - len(calls[1])) <= 1
    assert results[0] == results[1] and ranks[0][0].rows == ranks[1][0].rows


# ---------------------------------------------------------------------------------------------- BatchNorm


def test_batchnorm_recalibration_recomputes_running_statistics():
    torch.manual_seed(0)
    model = build_generator("mobile_resnet", ngf=8, norm="batch", n_blocks=3, use_dropout=True)
    norm = model.model[2]
    norm.running_mean.fill_(5.0)
    norm.running_var.fill_(7.0)
    batches = [torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3)]
    recalibrate_batchnorm(model, batches)
    with torch.no_grad():
        stem = [model.model[:2](images) for images in batches]
    expected_mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in stem]).mean(0)
    expected_var = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in stem]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected_mean)
    torch.testing.assert_close(norm.running_var, expected_var)
    assert norm.momentum == 0.1 and not any(module.training for module in model.modules())


# ---------------------------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return make_builtin("shapes2render", tmp_path_factory.mktemp("data") / "shapes", size=32, count=10)


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory):
    torch.manual_seed(0)
    net = init_weights(build_generator("super_mobile_resnet", ngf=8, norm="batch", n_blocks=3))
    return save_model(tmp_path_factory.mktemp("supernet") / "supernet.pt", net, "super_mobile_resnet",
                      net.arch_kwargs())


def search_config(paired, supernet_file, tmp_path, **overrides) -> SearchConfig:
    values = dict(TINY, data=str(paired), supernet=str(supernet_file), out_dir=str(tmp_path / "runs"),
                  candidates=CANDIDATES, budget_macs="4M")
    return SearchConfig(**{**values, **overrides})


def test_candidates_are_scored_after_recalibration(paired, supernet_file, tmp_path):
    from ganslim.checkpoints import load_generator

    config = search_config(paired, supernet_file, tmp_path)
    supernet = load_generator(supernet_file).model
    scorer, metric = scoring.build_scorer(config, supernet, torch.device("cpu"))
    assert metric == "psnr" and len(scorer.calibration) == 2 and len(scorer.eval_batches) == 1
    channels = [8, 8, 16, 16, 32, 16, 8, 8]
    compact = scorer.compact(channels)
    plain = extract_subnet(supernet, channels)
    assert not torch.equal(compact.model[2].running_mean, plain.model[2].running_mean)  # recalibrated copy
    assert torch.equal(supernet.model[2].running_mean[:8], plain.model[2].running_mean)  # supernet untouched
    metrics = scorer.score(compact)
    assert set(metrics) == {"psnr", "ssim"} and metrics["psnr"] > 0


def test_search_run_respects_the_budget_and_writes_the_table(paired, supernet_file, tmp_path):
    config = search_config(paired, supernet_file, tmp_path)
    result = run_search(config, progress=False)
    budget = parse_macs("4M")
    run = result.run_dir
    assert result.strategy == "exhaustive" and 0 < result.fitting == result.evaluated < 64
    table = json.loads((run / "candidates.json").read_text())
    rows = table["rows"]
    assert table["metric"] == "psnr" and table["maximize"] and table["space_size"] == 64
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
    assert all(row["macs_published"] <= budget for row in rows)
    with open(run / "candidates.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(rows) and lines[0]["channels"] == config_key(rows[0]["channels"])
    assert set(lines[0]) >= {"rank", "channels", "fits", "score", "macs_published", "macs", "psnr", "ssim"}
    chosen = json.loads((run / "result.json").read_text())
    assert chosen["channels"] == rows[0]["channels"] == result.best["channels"]
    compact = build_generator("mobile_resnet", ngf=8, norm="batch", n_blocks=3, channels=chosen["channels"])
    assert count_macs(compact, torch.zeros(1, 3, 32, 32)).macs_published == chosen["macs_published"] <= budget
    with pytest.raises(GanslimError, match=r"budget 100K MACs is below the smallest sub-network \(\S+ published\)"):
        run_search(search_config(paired, supernet_file, tmp_path, budget_macs="100K"), progress=False)
    with pytest.raises(GanslimError) as excinfo:
        run_search(config, resume=tmp_path, progress=False)
    assert str(excinfo.value) == (f"'{tmp_path}' is not a run folder (no config.yaml): pass a folder that "
                                  f"'ganslim compress gan-compression-search' made")


def test_a_restarted_search_under_a_latency_budget_skips_scored_candidates(paired, supernet_file, tmp_path,
                                                                           monkeypatch):
    latency = lambda model: count_params(model) / 1000  # noqa: E731 - a deterministic stand-in timer
    space = SearchSpace.default([8, 16, 32, 32, 32, 32, 16, 8], n_blocks=3, norm="batch")
    sizes = [count_params(build_generator("mobile_resnet", n_blocks=3, channels=c)) / 1000
             for c in (space.smallest(), space.largest())]
    budget_ms = sum(sizes) / 2
    config = search_config(paired, supernet_file, tmp_path, budget_macs="", budget_ms=budget_ms)
    original = CandidateScorer.score
    calls = {"n": 0}

    def dies_at_twelve(self, model):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt  # a killed search
        return original(self, model)

    monkeypatch.setattr(CandidateScorer, "score", dies_at_twelve)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, progress=False, latency=latency)
    run = sorted((tmp_path / "runs").iterdir())[-1]
    done = read_progress(run / "candidates.jsonl")
    assert len(done) % 8 == 0 and 8 <= len(done) < 64 and not (run / "result.json").exists()  # whole rounds

    counted = {"n": 0}
    monkeypatch.setattr(CandidateScorer, "score", lambda self, model: counted.__setitem__("n", counted["n"] + 1)
                        or original(self, model))
    result = run_search(config, resume=run, progress=False, latency=latency)
    rows = read_progress(run / "candidates.jsonl")
    fitting = [row for row in rows.values() if row["fits"]]
    assert len(rows) == result.evaluated == 64 and all(rows[key] == done[key] for key in done)
    assert counted["n"] == len(fitting) - sum(row["fits"] for row in done.values())  # only the unscored ones
    assert 0 < len(fitting) < 64 and all(row["latency_ms"] <= budget_ms for row in fitting)
    assert all(row["latency_ms"] > budget_ms and row["metrics"] is None for row in rows.values() if not row["fits"])
    assert result.best["latency_ms"] <= budget_ms


def test_a_latency_search_shows_its_stages_and_records_a_candidate_timed_twice(paired, supernet_file, tmp_path,
                                                                             capsys):
    lucky, timed = [8, 16, 32, 32, 16, 32, 16, 8], []

    def latency(model):  # a deterministic stand-in timer; the lucky configuration reads 10x fast the first time
        channels = list(getattr(model, "channels", []))
        timed.append(channels)
        return count_params(model) / 1000 / (10 if channels == lucky and timed.count(lucky) == 1 else 1)

    space = SearchSpace(CANDIDATES, n_blocks=3)
    budget_ms = count_params(build_generator("mobile_resnet", n_blocks=3, channels=space.largest())) / 1000
    config = search_config(paired, supernet_file, tmp_path, budget_macs="", budget_ms=budget_ms)
    result = run_search(config, progress=True, latency=latency)
    shown = capsys.readouterr().err
    spans = len({key for c in space.enumerate() for key, _ in channel_spans(c, 3)}) - 7  # 7: the smallest's,
    assert re.search(rf"latency: spans: 100%\|█+\| {spans}/{spans} \[[^]]*(span/s|s/span)\]", shown)
    assert re.search(r"exhaustive: 100%\|█+\| 64/64 \[[^]]*(candidate/s|s/candidate)\]", shown)
    with open(result.run_dir / "candidates.csv", newline="") as handle:
        rows = {line["channels"]: line for line in csv.DictReader(handle)}
    row, other = rows[config_key(lucky)], rows[config_key(space.largest())]
    first, second = float(row["latency_first_ms"]), float(row["latency_ms"])
    assert second == pytest.approx(10 * first) and row["retimed"].endswith("ms predicted")
    assert other["latency_first_ms"] == other["retimed"] == ""
    table = json.loads((result.run_dir / "candidates.json").read_text())["rows"]
    assert [r["latency_first_ms"] for r in table if "latency_first_ms" in r] == [pytest.approx(first)]


def test_a_speedup_budget_is_the_teachers_time_on_the_same_timer_over_the_speedup(paired, supernet_file, tmp_path):
    kwargs = dict(ngf=8, n_blocks=3, norm="batch")
    teacher = save_model(tmp_path / "teacher.pt", init_weights(build_generator("resnet", **kwargs)), "resnet", kwargs)
    latency = lambda model: count_params(model) / 1000  # noqa: E731 - a deterministic stand-in timer
    teacher_ms = latency(build_generator("resnet", **kwargs))
    config = search_config(paired, supernet_file, tmp_path, budget_macs="", budget_speedup=6.0)
    with pytest.raises(GanslimError, match="--budget-speedup is relative to the teacher: pass --teacher"):
        run_search(config, progress=False, latency=latency)
    config = dataclasses.replace(config, teacher=str(teacher))
    result = run_search(config, progress=False, latency=latency)
    budget = read_result(result.run_dir)["budget"]
    assert budget["teacher_ms"] == teacher_ms and budget["ms"] == pytest.approx(teacher_ms / 6)
    assert 1 < result.fitting < result.evaluated and result.best["latency_ms"] <= teacher_ms / 6
    with pytest.raises(GanslimError, match=r"budget 0.0697 ms \(1000x faster than the teacher's .* ms\) is below"):
        run_search(dataclasses.replace(config, budget_speedup=1000.0), progress=False, latency=latency)


def test_a_resumed_search_judges_known_rows_by_the_new_budget():
    space = SearchSpace([[16, 8], [32, 16], [64, 32], [64, 32], [64, 32], [64, 32], [32, 16], [16, 8]])
    loose, _ = synthetic_search(Budget(macs=parse_macs("100G")), space)
    loose.exhaustive(list(space.enumerate()))
    budget = Budget(macs=int(space.predict_macs(space.largest(), 256).macs_published * 0.6))
    strict, calls = synthetic_search(budget, space, rows=loose.rows)
    best = strict.exhaustive(list(space.enumerate()))
    assert calls == [] and best["macs_published"] <= budget.macs  # nothing scored again, the budget applies
    assert any(not row["fits"] and row["score"] is None for row in strict.rows.values())
    timed, calls = synthetic_search(Budget(ms=30.0), space, rows=loose.rows, latency=lambda c: sum(c) / 10)
    timed.exhaustive(list(space.enumerate()))
    assert len(calls) == sum(row["fits"] for row in timed.rows.values())  # no latency known: measured again
