"""Small-data and noise axes: stratified, nested, reproducible subsets; exact label noise to other
classes; the validation split; the manifest; the one-line refusals."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinitlab.data import DataBundle
from reinitlab.data.split import make_split, quotas, stratified_pick
from reinitlab.util.errors import UserError


def bundle(counts, val=None, name="toy"):
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]  # classes interleaved
    x = torch.zeros(len(y), 1, 4, 4, dtype=torch.uint8)
    b = DataBundle(name=name, x_train=x, y_train=y, x_test=x[:3], y_test=y[:3],
                   classes=[f"c{i}" for i in range(len(counts))], source={"fingerprint": "f"})
    if val is not None:
        b.x_val, b.y_val = x[:val], y[:val]
    return b.check()


def test_subset_is_stratified():
    b = bundle([600, 300, 100])
    s = make_split(b, train_size=100, val_fraction=0.0, label_noise=0.0, data_seed=0)
    assert torch.bincount(b.y_train[s.train]).tolist() == [60, 30, 10]
    assert len(set(s.train.tolist())) == 100


def test_largest_remainders_match_proportions_within_one():
    counts = torch.tensor([7, 13, 29, 51])
    for n in range(1, 100):
        q = quotas(counts, n)
        assert int(q.sum()) == n
        assert ((q.double() - counts.double() * n / counts.sum()).abs() < 1).all()


def test_same_data_seed_same_examples_whatever_the_model_seed():
    b = bundle([50, 50, 50])
    a = make_split(b, 30, 0.1, 0.2, data_seed=3)
    c = make_split(b, 30, 0.1, 0.2, data_seed=3)
    d = make_split(b, 30, 0.1, 0.2, data_seed=4)
    assert torch.equal(a.train, c.train) and torch.equal(a.val, c.val) and torch.equal(a.labels, c.labels)
    assert a.manifest(b)["hash"] == c.manifest(b)["hash"] != d.manifest(b)["hash"]
    assert not torch.equal(a.train, d.train)


def test_subsets_nest_across_sizes():
    b = bundle([80, 40, 20])
    small = make_split(b, 14, 0.1, 0.0, data_seed=0)
    big = make_split(b, 70, 0.1, 0.0, data_seed=0)
    assert set(small.train.tolist()) <= set(big.train.tolist())
    assert torch.equal(small.val, big.val)


def test_val_split_is_stratified_and_disjoint():
    b = bundle([100, 50, 50])
    s = make_split(b, None, 0.2, 0.0, data_seed=0)
    assert torch.bincount(b.y_train[s.val]).tolist() == [20, 10, 10]
    assert not set(s.val.tolist()) & set(s.train.tolist())
    assert len(s.train) + len(s.val) == 200 and not s.val_official


def test_official_val_split_is_used_as_is():
    b = bundle([20, 20], val=5)
    s = make_split(b, 10, 0.3, 0.0, data_seed=0)
    assert s.val_official and s.val.tolist() == [0, 1, 2, 3, 4]
    assert len(s.train) == 10  # drawn from the whole training pool: nothing held out


def test_val_never_takes_a_class_last_example():
    b = bundle([40, 1, 1])
    s = make_split(b, None, 0.5, 0.0, data_seed=0)
    assert torch.bincount(b.y_train[s.train], minlength=3).tolist()[1:] == [1, 1]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 200), C=st.integers(2, 12), p=st.floats(0.0, 0.95), seed=st.integers(0, 10**6))
def test_noise_flips_exactly_the_fraction_to_other_classes(n, C, p, seed):
    counts = [n // C + (1 if c < n % C else 0) for c in range(C)]
    if min(counts) == 0:
        return
    b = bundle(counts)
    s = make_split(b, None, 0.0, p, data_seed=seed)
    true = b.y_train[s.train]
    changed = torch.nonzero(s.labels != true).flatten()
    assert len(changed) == round(p * n)  # and every noisy label differs from the true one
    assert torch.equal(changed, s.noisy)
    m = s.manifest(b)
    assert m["noisy"] == s.noisy.tolist()
    assert m["true_labels_of_noisy"] == true[s.noisy].tolist()
    assert all(a != t for a, t in zip(m["noisy_labels"], m["true_labels_of_noisy"], strict=True))


def test_noise_targets_are_uniform_over_other_classes():
    b = bundle([3000, 3000, 3000, 3000])
    s = make_split(b, None, 0.0, 0.5, data_seed=0)
    true, noisy = b.y_train[s.train][s.noisy], s.labels[s.noisy]
    offset = torch.bincount((noisy - true) % 4, minlength=4).tolist()
    assert offset[0] == 0 and all(abs(o - 2000) < 150 for o in offset[1:])


def test_noise_applies_to_the_subset_and_keeps_the_subset():
    b = bundle([100, 100])
    clean = make_split(b, 50, 0.0, 0.0, data_seed=0)
    noisy = make_split(b, 50, 0.0, 0.3, data_seed=0)
    assert torch.equal(clean.train, noisy.train) and len(noisy.noisy) == 15


def test_train_size_larger_than_pool_is_refused():
    b = bundle([10, 10])
    with pytest.raises(UserError, match=r"train_size=19 is larger than the training pool of toy \(18 examples"):
        make_split(b, 19, 0.1, 0.0, data_seed=0)


def test_class_too_small_for_the_train_size_is_refused_with_the_minimum():
    b = bundle([1000, 10, 500])
    with pytest.raises(UserError) as e:
        make_split(b, 60, 0.0, 0.0, data_seed=0)
    msg = str(e.value)
    assert "class 'c1' (10 of 1510 pool examples) would get no example; use train_size >= 91" in msg
    assert "\n" not in msg
    s = make_split(b, 91, 0.0, 0.0, data_seed=0)
    assert torch.bincount(b.y_train[s.train]).tolist() == [60, 1, 30]


def test_stratified_pick_cap():
    y = torch.tensor([0] * 5 + [1] * 5)
    got = stratified_pick(y, 8, 2, torch.Generator().manual_seed(0), cap=torch.tensor([4, 1]))
    assert torch.bincount(y[got]).tolist() == [4, 1]


def test_bundle_check_refuses_empty_class_and_one_class():
    x = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(UserError, match="class 'b' has no training examples"):
        DataBundle("t", x, torch.tensor([0, 0, 2, 2]), x, torch.tensor([0, 1, 2, 0]), ["a", "b", "c"]).check()
    with pytest.raises(UserError, match="1 class; classification needs at least 2"):
        DataBundle("t", x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), ["a"]).check()
