"""PromptSampler: deterministic epochs, no repeats within an epoch or a batch, exact resume."""

import json

import pytest

from uniopd.data import DataError, PromptSampler
from uniopd.tasks.problem import Problem

PROBLEMS = [
    Problem(id=f"p{i}", domain="math", prompt=f"{i}+1?", answer=str(i + 1)) for i in range(10)
]


def ids(batch):
    return [p.id for p in batch]


def draw(sampler, sizes):
    return [ids(sampler.next_batch(n)) for n in sizes]


SIZES = [3, 4, 2, 3, 7, 1, 5, 3, 10, 4]


def test_same_seed_same_batches_other_seed_other_batches():
    a = draw(PromptSampler(PROBLEMS, seed=1), SIZES)
    assert a == draw(PromptSampler(PROBLEMS, seed=1), SIZES)
    assert a != draw(PromptSampler(PROBLEMS, seed=2), SIZES)


def test_each_epoch_is_a_permutation_and_epochs_differ():
    sampler = PromptSampler(PROBLEMS, seed=0)
    first = ids(sampler.next_batch(4) + sampler.next_batch(6))
    assert sorted(first) == sorted(ids(PROBLEMS)) and (sampler.epoch, sampler.position) == (0, 10)
    second = ids(sampler.next_batch(5) + sampler.next_batch(5))
    assert sorted(second) == sorted(ids(PROBLEMS)) and (sampler.epoch, sampler.position) == (1, 10)
    assert first != second


def test_no_repeats_within_an_epoch_or_a_batch_that_straddles_two():
    sampler = PromptSampler(PROBLEMS, seed=3)
    stream = []
    for _ in range(40):
        batch = ids(sampler.next_batch(7))
        assert len(set(batch)) == 7
        stream += batch
    for epoch in range(len(stream) // 10):
        assert sorted(stream[epoch * 10 : (epoch + 1) * 10]) == sorted(ids(PROBLEMS))


def test_batch_larger_than_the_dataset_repeats_only_across_epochs():
    sampler = PromptSampler(PROBLEMS[:3], seed=0)
    batch = ids(sampler.next_batch(7))
    assert len(batch) == 7 and sorted(batch[:3]) == sorted(batch[3:6]) == ["p0", "p1", "p2"]
    assert (sampler.epoch, sampler.position) == (2, 1)


def test_intentional_duplicates_in_the_list_are_kept():
    doubled = PROBLEMS[:2] + PROBLEMS[:1]  # an upsampled (balanced) list repeats on purpose
    assert sorted(ids(PromptSampler(doubled, seed=0).next_batch(3))) == ["p0", "p0", "p1"]


# 4 and 5 stop mid-epoch after a batch straddled two, where the stored order matters.
@pytest.mark.parametrize("stop", [0, 1, 3, 4, 5, 6])
def test_resume_from_state_dict_gives_identical_future_batches(stop):
    original = PromptSampler(PROBLEMS, seed=5)
    draw(original, SIZES[:stop])
    state = json.loads(json.dumps(original.state_dict()))  # what a checkpoint would hold
    future = draw(original, SIZES[stop:])

    resumed = PromptSampler(PROBLEMS, seed=5)
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.position) == (state["epoch"], state["position"])
    assert draw(resumed, SIZES[stop:]) == future


def test_state_from_another_dataset_or_seed_is_refused():
    state = PromptSampler(PROBLEMS, seed=5).state_dict()
    with pytest.raises(ValueError, match="9 with seed 5"):
        PromptSampler(PROBLEMS[:9], seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="seed 6"):
        PromptSampler(PROBLEMS, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="corrupt"):
        PromptSampler(PROBLEMS, seed=5).load_state_dict(state | {"order": [0] * 10})


def test_empty_problem_list_is_an_error():
    with pytest.raises(DataError, match="no problems"):
        PromptSampler([], seed=0)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        PromptSampler(PROBLEMS, seed=0).next_batch(0)
