"""EvatokRouter: heads, losses, selection under preferences / caps / quality targets / average budgets,
save/load and Auto classes (tiny odd sizes, CPU)."""

import itertools

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_vidtok import EvatokRouter, EvatokRouterConfig
from hf_vidtok.evatok.assignments import assignment_to_class, candidate_assignments, class_to_assignment
from hf_vidtok.evatok.reward import RewardStats, best_assignment, proxy_reward, quality_scores
from hf_vidtok.models.evatok import EvatokRouterOutput

LEVELS = (2, 4, 8)
BLOCKS = 3  # A = 27 candidates, lengths 6 .. 24


def tiny_config(**overrides):
    kwargs = dict(
        token_levels=LEVELS, num_blocks=BLOCKS, image_size=16, num_frames=6, patch_size=8, temporal_patch_size=2,
        hidden_size=24, num_attention_heads=3, num_hidden_layers=2, head_type="quality",
        quality_metric="lpips", quality_mean=0.3, quality_std=0.1,
    )
    kwargs.update(overrides)
    return EvatokRouterConfig(**kwargs)


def clips(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 6, 16, 16, generator=g)


def table_like_quality(n, seed=0):
    """Realistic Q^ (N, A): quality rises with tokens, with diminishing returns and clip-specific block weights."""
    g = torch.Generator().manual_seed(seed)
    cand = candidate_assignments(LEVELS, BLOCKS).double()
    difficulty = torch.rand(n, BLOCKS, generator=g, dtype=torch.float64) * 2
    q = -(difficulty.unsqueeze(1) / cand.log2().unsqueeze(0)).sum(-1)
    q = q + 0.05 * torch.randn(n, cand.shape[0], generator=g, dtype=torch.float64)
    return ((q - q.mean()) / q.std()).float()


@pytest.fixture(scope="module")
def router():
    torch.manual_seed(0)
    return EvatokRouter(tiny_config()).eval()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(1)
    model = EvatokRouter(tiny_config(head_type="classifier", label_w_q=1.2)).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)  # the zero-init head would give uniform logits
    return model


LENGTHS = candidate_assignments(LEVELS, BLOCKS).sum(-1)


def brute_force(util, allowed):
    """Reference argmax per row over allowed classes, ties -> shorter then lower id (python loops)."""
    out = []
    for row, ok in zip(util.tolist(), allowed.tolist()):
        best = None
        for a, (u, o) in enumerate(zip(row, ok)):
            key = (-u, int(LENGTHS[a]), a)
            if o and (best is None or key < best[0]):
                best = (key, a)
        out.append(best[1])
    return torch.tensor(out)


# ------------------------------------------------------------------------------------------------ model


def test_candidate_buffers_and_class_round_trip(router, classifier):
    cand = candidate_assignments(LEVELS, BLOCKS)
    assert torch.equal(router.candidate_assignments, cand)
    assert torch.equal(router.assignment_lengths, cand.sum(-1))
    assert torch.equal(router.distinct_lengths, torch.unique(cand.sum(-1)))
    assert torch.equal(router.distinct_lengths[router.length_columns], router.assignment_lengths)
    ids = torch.arange(cand.shape[0])
    assert torch.equal(assignment_to_class(class_to_assignment(ids, LEVELS, BLOCKS), LEVELS), ids)
    # a one-hot head output selects exactly that class's assignment, for every class
    logits = torch.full((len(ids), len(ids)), -30.0)
    logits[ids, ids] = 30.0
    chosen = classifier.select_from_scores(logits)
    assert torch.equal(chosen, cand)
    assert torch.equal(assignment_to_class(chosen, LEVELS), ids)


def test_listwise_loss_is_minimal_at_the_true_quality():
    """The quality head's listwise term is a KL divergence between the table's and the predicted reward
    distributions: zero when the prediction is the target up to a per-clip shift (the regression's optimum too),
    positive otherwise, and its gradient never pushes an assignment above its true quality (a hard-label
    cross-entropy made the shortest assignment, the label of most clips at small w_q, look like the best one)."""
    torch.manual_seed(0)
    model = EvatokRouter(tiny_config(head_type="quality", listwise_loss_weight=1.0))
    targets = torch.randn(5, model.config.num_assignments, dtype=torch.float64)
    shifted = targets + torch.randn(5, 1, dtype=torch.float64)
    _, listwise = model._quality_losses(shifted, targets)
    assert abs(float(listwise)) < 1e-6  # the losses run in float32
    for wrong in (targets + 0.3 * torch.randn_like(targets), targets * 2.0):
        assert float(model._quality_losses(wrong, targets)[1]) > 1e-4
    # at the optimum the gradient vanishes: nothing keeps growing
    q = shifted.clone().requires_grad_(True)
    model._quality_losses(q, targets)[1].backward()
    assert q.grad.abs().max() < 1e-6


@pytest.mark.parametrize("head", ["classifier", "quality"])
def test_head_shapes_and_losses(head):
    torch.manual_seed(0)
    model = EvatokRouter(tiny_config(head_type=head, listwise_loss_weight=0.5))
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the zero-init head passes no gradient to the backbone
    x = clips(4)
    a = model.config.num_assignments
    if head == "classifier":
        out = model(x, labels=torch.tensor([0, 5, 26, 3]))
        assert out.logits.shape == (4, a) and out.quality is None
        assert out.scores is out.logits
        soft = torch.softmax(torch.randn(4, a), -1)
        out_soft = model(x, labels=soft)
        ref = -(soft * torch.log_softmax(out_soft.logits, -1)).sum(-1).mean()
        torch.testing.assert_close(out_soft.loss, ref)
        onehot = torch.nn.functional.one_hot(torch.tensor([0, 5, 26, 3]), a).float()
        torch.testing.assert_close(model(x, labels=onehot).loss, out.loss)
    else:
        targets = torch.randn(4, a)
        out = model(x, quality_targets=targets)
        assert out.quality.shape == (4, a) and out.logits is None
        mse = torch.nn.functional.mse_loss
        q_mean, t_mean = out.quality.mean(-1, keepdim=True), targets.mean(-1, keepdim=True)
        spread = (targets - t_mean).pow(2).mean().sqrt()
        expect = mse(q_mean, t_mean) + mse((out.quality - q_mean) / spread, (targets - t_mean) / spread)
        torch.testing.assert_close(out.quality_loss, expect)
        # equal to the plain MSE when the within-clip spread is 1 (the MSE splits into the two parts)
        t1 = targets - t_mean
        t1 = t1 / t1.pow(2).mean().sqrt() + t_mean
        torch.testing.assert_close(model(x, quality_targets=t1).quality_loss, mse(out.quality, t1))
        assert out.listwise_loss is not None and out.listwise_loss > 0
        torch.testing.assert_close(out.loss, out.quality_loss + 0.5 * out.listwise_loss)
    assert out.cls_hidden_state.shape == (4, 24)
    assert isinstance(out, EvatokRouterOutput) and out.loss.dim() == 0
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0  # the loss reaches the input embedding
    # tuple output
    assert isinstance(model(x, return_dict=False), tuple)


def test_zero_init_head_is_uniform_and_resize(router):
    x = clips(2)
    out = router(x)
    torch.testing.assert_close(out.quality, torch.zeros(2, 27))
    # other clip sizes are resampled to the router grid; disabling it raises
    big = torch.rand(2, 3, 12, 32, 32)
    assert router(big).quality.shape == (2, 27)
    strict = EvatokRouter(tiny_config(resize_input=False))
    with pytest.raises(ValueError, match="resize_input"):
        strict(big)
    with pytest.raises(ValueError, match="pixel_values"):
        router(torch.rand(2, 1, 6, 16, 16))
    with pytest.raises(TypeError, match="pixel_values"):
        router([x])


def test_wrong_loss_inputs(router, classifier):
    x = clips(2)
    with pytest.raises(ValueError, match="quality_targets"):
        classifier(x, quality_targets=torch.randn(2, 27))
    with pytest.raises(ValueError, match="labels"):
        router(x, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="quality_targets"):
        router(x, quality_targets=torch.randn(2, 26))
    with pytest.raises(ValueError, match="soft labels"):
        classifier(x, labels=torch.randn(2, 5))


def test_config_validation():
    with pytest.raises(ValueError, match="head_type"):
        tiny_config(head_type="regression")
    with pytest.raises(ValueError, match="levels"):
        tiny_config(token_levels=(4, 2))
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(image_size=20)
    with pytest.raises(ValueError, match="quality_metric"):
        tiny_config(quality_metric="fvd")
    with pytest.raises(ValueError, match="default_w_q"):
        tiny_config(default_w_q=2.5)
    # the paper's set: 625 classes, Eq. 7 statistics 793.6 / 349.14, ViT-S 12 layers ~21.8M
    paper = EvatokRouterConfig()
    assert paper.num_assignments == 625
    mean, std = paper.length_stats()
    assert mean == pytest.approx(793.6) and std == pytest.approx(349.14, abs=5e-3)


def test_save_load_and_auto_round_trip(tmp_path, classifier):
    x = clips(2)
    classifier.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, EvatokRouterConfig) and config.model_type == "evatok_router"
    assert config.token_levels == list(LEVELS) and config.label_w_q == 1.2
    from hf_vidtok.evatok import reward

    reward._LENGTH_STATS.clear()  # as in a fresh process: the statistics are computed inside from_pretrained's meta context
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, EvatokRouter)
    torch.testing.assert_close(loaded(x).logits, classifier(x).logits)
    for name in ("candidate_assignments", "assignment_lengths", "distinct_lengths", "length_columns"):
        assert torch.equal(getattr(loaded, name), getattr(classifier, name)), name
    torch.testing.assert_close(loaded.pos_embed, classifier.pos_embed)
    assert torch.equal(loaded.select(x, max_tokens=12), classifier.select(x, max_tokens=12))


# --------------------------------------------------------------------------------------------- selection


def test_preference_matches_reward_argmax(router):
    q = table_like_quality(40)
    stats = RewardStats(LEVELS, BLOCKS, "lpips", 0.0, 1.0, *router.config.length_stats())
    for w_q in (0.0, 0.4, 1.2, 2.0):
        chosen = router.select_from_scores(q, w_q=w_q)
        # H5's reward on a table whose signed z-score equals Q^: lpips = -Q^ with mean 0, std 1
        ref = best_assignment(proxy_reward(-q.double(), stats, w_q), stats=stats)
        assert torch.equal(assignment_to_class(chosen, LEVELS), ref)
    # default preference (config.default_w_q = 1.2)
    assert torch.equal(router.select_from_scores(q), router.select_from_scores(q, w_q=1.2))


def test_length_monotone_in_w_q(router):
    q = table_like_quality(64, seed=3)
    grid = torch.linspace(0, 2, 41).tolist()
    lengths = torch.stack([router.select_from_scores(q, w_q=w).sum(-1) for w in grid])
    assert (lengths[1:] >= lengths[:-1]).all()
    assert lengths[0].eq(BLOCKS * LEVELS[0]).all()  # w_q = 0: length only
    assert lengths[-1].float().mean() > lengths[0].float().mean() + 4  # the preference matters


def test_cap_never_exceeded_and_optimal(router, classifier):
    g = torch.Generator().manual_seed(5)
    for trial in range(20):
        scores = torch.randn(16, 27, generator=g)
        caps = torch.randint(6, 26, (16,), generator=g)
        for model in (router, classifier):
            chosen = model.select_from_scores(scores, max_tokens=caps)
            assert (chosen.sum(-1) <= caps).all()
            util = scores if model is router else torch.log_softmax(scores.double(), -1)
            allowed = LENGTHS.unsqueeze(0) <= caps.unsqueeze(1)
            assert torch.equal(assignment_to_class(chosen, LEVELS), brute_force(util, allowed))
        # a cap combined with a preference / a multiplier is still a hard limit
        for kwargs in ({"w_q": 2.0}, {"length_multiplier": 0.0}, {"allowed_prefix": [2]}):
            assert (router.select_from_scores(scores, max_tokens=caps, **kwargs).sum(-1) <= caps).all()
    # an int cap applies to every clip; the minimum cap forces the shortest assignment
    assert router.select_from_scores(torch.randn(5, 27), max_tokens=6).eq(2).all()


def test_prefix_restriction(router, classifier):
    g = torch.Generator().manual_seed(7)
    scores = torch.randn(32, 27, generator=g)
    for prefix in ([8], [4, 2], [2, 8, 4]):
        for model in (router, classifier):
            chosen = model.select_from_scores(scores, allowed_prefix=prefix)
            assert (chosen[:, : len(prefix)] == torch.tensor(prefix)).all()
            util = scores if model is router else torch.log_softmax(scores.double(), -1)
            allowed = (candidate_assignments(LEVELS, BLOCKS)[:, : len(prefix)] == torch.tensor(prefix)).all(-1)
            if model is classifier:  # classifier: the most probable class with that prefix (paper Sec. 4.4)
                assert torch.equal(assignment_to_class(chosen, LEVELS), brute_force(util, allowed.expand(32, -1)))
    # the prefix is a contiguous class range
    ids = assignment_to_class(router.select_from_scores(scores, allowed_prefix=[4], w_q=2.0), LEVELS)
    assert ((ids >= 9) & (ids < 18)).all()
    # prefix + budget: still within the prefix
    chosen = router.select_from_scores(scores, allowed_prefix=[8], target_mean_tokens=14)
    assert (chosen[:, 0] == 8).all() and chosen.sum(-1).float().mean() <= 14


@pytest.mark.parametrize("target", [7.0, 10.0, 13.5, 17.0, 21.0, 24.0])
def test_average_budget_met_from_below(router, target):
    q = table_like_quality(64, seed=11)
    chosen = router.select_from_scores(q, target_mean_tokens=target)
    mean = chosen.sum(-1).float().mean().item()
    assert mean <= target + 1e-9
    assert target - mean <= min(LEVELS)  # within one level of the target
    lam = router.calibrate_length_multiplier(q, target)
    assert lam >= 0
    assert torch.equal(router.select_from_scores(q, length_multiplier=lam), chosen)
    # a multiplier is a preference, w_q = 2 / (1 + lambda) (off the critical point, where rounding decides ties)
    lam = 1.01 * lam + 1e-3
    by_multiplier = router.select_from_scores(q, length_multiplier=lam)
    assert torch.equal(router.select_from_scores(q, w_q=2.0 / (1.0 + lam)), by_multiplier)
    assert by_multiplier.sum(-1).float().mean() <= mean  # a larger multiplier never spends more


def test_three_budgets_one_router_classifier_too(classifier):
    g = torch.Generator().manual_seed(2)
    logits = 3 * torch.randn(50, 27, generator=g)
    means = []
    free = classifier.select_from_scores(logits).sum(-1).float().mean().item()  # argmax of the logits
    for target in (8.0, 11.0, 14.0):
        assert target < free
        m = classifier.select_from_scores(logits, target_mean_tokens=target).sum(-1).float().mean().item()
        assert m <= target and target - m <= 2.0
        means.append(m)
    assert means[0] < means[1] < means[2]
    # a budget above the free choice changes nothing (lambda = 0)
    assert classifier.calibrate_length_multiplier(logits, free + 1) == 0.0


def test_quality_target(router):
    q = table_like_quality(30, seed=4)
    c = router.config
    for lpips in (0.15, 0.3, 0.45):
        chosen = router.select_from_scores(q, quality_target=lpips)
        z = -(lpips - c.quality_mean) / c.quality_std  # signed z-score of the target (lpips: lower is better)
        ids = assignment_to_class(chosen, LEVELS)
        for row, cls in zip(q, ids):
            ok = row >= z
            if ok.any():
                assert row[cls] >= z and LENGTHS[cls] == LENGTHS[ok].min()
                same = ok & (LENGTHS == LENGTHS[cls])
                assert row[cls] == row[same].max()
            else:
                assert cls == row.argmax()
    # looser targets never need more tokens
    l1 = router.select_from_scores(q, quality_target=0.2).sum(-1)
    l2 = router.select_from_scores(q, quality_target=0.4).sum(-1)
    assert (l2 <= l1).all()


def test_select_runs_the_backbone(router):
    x = clips(3)
    out = router(x)
    for kwargs in ({}, {"max_tokens": 10}, {"target_mean_tokens": 12.0}, {"allowed_prefix": [4]}):
        assert torch.equal(router.select(x, **kwargs), router.select_from_scores(out, **kwargs))
    chosen = router.select(x)
    assert chosen.shape == (3, BLOCKS) and chosen.dtype == torch.long


def test_bad_budgets_raise_clear_errors(router, classifier):
    q = table_like_quality(4)
    cases = [
        (dict(max_tokens=-1), ValueError, "non-negative"),
        (dict(max_tokens=5), ValueError, "below the minimum possible length 6"),
        (dict(max_tokens=[10, 3, 10, 10]), ValueError, "below the minimum"),
        (dict(max_tokens=[10, 10]), ValueError, "one per clip"),
        (dict(max_tokens=10.5), TypeError, "max_tokens"),
        (dict(max_tokens=13, allowed_prefix=[8, 4]), ValueError, "minimum possible length 14 with allowed_prefix"),
        (dict(target_mean_tokens=-3.0), ValueError, "positive"),
        (dict(target_mean_tokens=5.0), ValueError, "below the minimum possible mean length 6"),
        (dict(target_mean_tokens=9.0, allowed_prefix=[8]), ValueError, "below the minimum possible mean"),
        (dict(w_q=1.0, target_mean_tokens=12.0), ValueError, "conflicting"),
        (dict(w_q=1.0, quality_target=0.2), ValueError, "conflicting"),
        (dict(w_q=2.5), ValueError, r"\[0, 2\]"),
        (dict(w_q=float("nan")), TypeError, "finite"),
        (dict(length_multiplier=-1.0), ValueError, ">= 0"),
        (dict(allowed_prefix=[3]), ValueError, "allowed_prefix"),
        (dict(allowed_prefix=[2, 2, 2, 2]), ValueError, "allowed_prefix"),
        (dict(allowed_prefix=[]), ValueError, "allowed_prefix"),
    ]
    for kwargs, err, msg in cases:
        with pytest.raises(err, match=msg):
            router.select_from_scores(q, **kwargs)
    with pytest.raises(ValueError, match="scores"):
        router.select_from_scores(torch.randn(4, 26))
    # classifier: one preference only, no quality estimate
    with pytest.raises(ValueError, match="label_w_q=1.2"):
        classifier.select_from_scores(q, w_q=0.8)
    assert torch.equal(classifier.select_from_scores(q, w_q=1.2), classifier.select_from_scores(q))
    with pytest.raises(ValueError, match="head_type='quality'"):
        classifier.select_from_scores(q, quality_target=0.2)
    # quality target without the metric statistics
    bare = EvatokRouter(tiny_config(quality_mean=None, quality_std=None))
    with pytest.raises(ValueError, match="quality_mean"):
        bare.select_from_scores(q, quality_target=0.2)


def test_quality_targets_follow_reward_convention():
    """The quality head's regression targets are H5's signed z-scores: argmax of the targets = best quality."""
    g = torch.Generator().manual_seed(0)
    lpips = torch.rand(6, 27, generator=g, dtype=torch.float64)
    stats = RewardStats(LEVELS, BLOCKS, "lpips", float(lpips.mean()), float(lpips.std()), 14.0, 6.0)
    q = quality_scores(lpips, stats)
    assert torch.equal(q.argmax(-1), lpips.argmin(-1))
    model = EvatokRouter(tiny_config(quality_mean=stats.quality_mean, quality_std=stats.quality_std))
    # with the exact targets as scores, a quality target in LPIPS units picks assignments that meet it
    chosen = assignment_to_class(model.select_from_scores(q.float(), quality_target=0.5), LEVELS)
    rows = torch.arange(6)
    met = (lpips <= 0.5).any(-1)
    assert (lpips[rows, chosen][met] <= 0.5 + 1e-6).all()


def test_selection_device_and_dtype_independent(router):
    q = table_like_quality(20, seed=9)
    a = router.select_from_scores(q, target_mean_tokens=15.0)
    b = router.select_from_scores(q.double(), target_mean_tokens=15.0)
    assert torch.equal(a, b)
    combos = list(itertools.product([None, 12], [None, [4]]))
    for cap, prefix in combos:
        assert router.select_from_scores(q, max_tokens=cap, allowed_prefix=prefix).shape == (20, BLOCKS)


# ----------------------------------------------------------------------------------- torch.compile


def test_forward_and_selection_compile_without_graph_breaks(router, classifier):
    """``fullgraph=True`` raises on any graph break (a host read of a tensor value). The ``eager`` backend runs the
    captured graph with eager kernels in eager order, so results are compared bitwise."""
    torch._dynamo.reset()
    x = clips()
    calls = {
        "forward": lambda m, x: m(x).scores,
        "default": lambda m, x: m.select(x),
        "cap": lambda m, x: m.select(x, max_tokens=12),
        "budget": lambda m, x: m.select(x, target_mean_tokens=14.0),
        "prefix": lambda m, x: m.select(x, allowed_prefix=(4,)),
    }
    with torch.no_grad():
        for model in (router, classifier):
            for name, fn in calls.items():
                compiled = torch.compile(fn, fullgraph=True, backend="eager")
                assert torch.equal(compiled(model, x), fn(model, x)), name
        for kwargs in (dict(w_q=0.5), dict(quality_target=0.25)):
            fn = lambda m, x, kw=kwargs: m.select(x, **kw)  # noqa: E731
            assert torch.equal(torch.compile(fn, fullgraph=True, backend="eager")(router, x), fn(router, x))
        # the host-side check becomes an in-graph assertion
        below = lambda m, x: m.select(x, target_mean_tokens=5.0)  # noqa: E731 - the shortest assignment has 6
        with pytest.raises(RuntimeError, match="target_mean_tokens"):
            torch.compile(below, fullgraph=True, backend="eager")(router, x)
