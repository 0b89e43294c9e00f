"""hf: sources through the real `datasets`, offline: local folders, save_to_disk folders, a hub id
in a temporary cache, the column mapping (and its errors at validation) and chat prompts."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

datasets = pytest.importorskip("datasets")

from uniopd.config import load_experiment  # noqa: E402
from uniopd.data import DataError, load_source  # noqa: E402
from uniopd.setup.plan import make_plan  # noqa: E402

MATH = {
    "question": ["What is 2+3?", "What is 7*6?", "What is 9-4?"],
    "final_answer": ["5", "42", "5"],
    "difficulty": [1.0, 2.5, 1.0],
}
MAPPING = {"domain": "math", "columns": {"prompt": "question", "answer": "final_answer"}}


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Both Hugging Face caches in the test's folder: `datasets` writes its arrow cache when it
    reads a data folder, and a hub id is looked up in them."""
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def write_parquet_folder(folder, splits):
    (folder / "data").mkdir(parents=True)
    for split, columns in splits.items():
        pq.write_table(pa.table(columns), folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


def test_parquet_folder_with_splits_and_a_column_mapping(tmp_path):
    test_rows = {key: values[:1] for key, values in MATH.items()}
    folder = write_parquet_folder(tmp_path / "deepmath", {"train": MATH, "test": test_rows})
    train = load_source(f"hf:{folder}", **MAPPING)  # the train split by default
    assert [(p.id, p.domain, p.prompt, p.answer) for p in train] == [
        ("deepmath-train-0", "math", "What is 2+3?", "5"),
        ("deepmath-train-1", "math", "What is 7*6?", "42"),
        ("deepmath-train-2", "math", "What is 9-4?", "5"),
    ]
    assert train[1].meta == {"difficulty": 2.5}  # unmapped columns go to meta
    assert len(load_source(f"hf:{folder}:test", **MAPPING)) == 1
    assert len(load_source(f"hf:{folder}", split="test", **MAPPING)) == 1
    assert len(load_source(f"hf:{folder}", **MAPPING, limit=2)) == 2
    with pytest.raises(
        DataError, match=r"no split 'dev'; the splits are (train, test|test, train)"
    ):
        load_source(f"hf:{folder}:dev", **MAPPING)


def test_save_to_disk_folders(tmp_path):
    rows = {"prompt": ["1+1?", "2+2?"], "answer": ["2", "4"], "domain": ["math", "math"]}
    one = tmp_path / "one"
    datasets.Dataset.from_dict(rows).save_to_disk(str(one))
    assert [p.answer for p in load_source(f"hf:{one}")] == ["2", "4"]
    several = tmp_path / "several"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "validation": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(several))
    [first, _] = load_source(f"hf:{several}:validation")
    assert first.id == "several-validation-0" and first.prompt == "1+1?"


def test_jsonl_folder_with_code_rows(tmp_path):
    folder = tmp_path / "eurus"
    folder.mkdir()
    row = {
        "prompt": "Print the sum of the two numbers.",
        "input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}),
        "ability": "code",
        "pass_rate": 0.25,
    }
    (folder / "train.jsonl").write_text(json.dumps(row) + "\n")
    columns = {"tests": "input_output", "domain": "ability", "pass_rate": "pass_rate"}
    [problem] = load_source(f"hf:{folder}", columns=columns)
    assert problem.domain == "code" and problem.meta == {"pass_rate": 0.25}
    assert problem.tests == {"inputs": ["1 2\n"], "outputs": ["3\n"]}


def fake_hub_download(cache, repo_id, columns):
    """What `load_dataset(repo_id)` leaves in $HF_DATASETS_CACHE after an online download of a
    parquet-only hub repository: `<namespace>___<name>/default/0.0.0/<commit>/<name>-train.arrow`.
    It is made by the same parquet builder, then put under the repository's name."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo_id.split("/")
    source = cache.parent / f"{name}-download.parquet"
    pq.write_table(pa.table(columns), source)
    builder = Parquet(
        cache_dir=str(cache), dataset_name=name, data_files={"train": [str(source)]}, hash="c0ffee"
    )
    builder.download_and_prepare()
    (cache / name).rename(cache / f"{namespace}___{name}")
    for config in (cache / f"{namespace}___{name}").glob("default-*"):
        config.rename(config.parent / "default")  # a hub repository's config is `default`


def test_a_hub_id_in_the_local_cache_loads_offline(tmp_path):
    fake_hub_download(tmp_path / "hf-datasets", "someone/deepmath-mini", MATH)
    problems = load_source("hf:someone/deepmath-mini", **MAPPING)
    assert [p.answer for p in problems] == ["5", "42", "5"]
    assert problems[0].id == "deepmath-mini-train-0"


def test_a_hub_snapshot_in_the_hub_cache_loads_offline(tmp_path):
    # `huggingface-cli download --repo-type dataset someone/snap` leaves files, not arrow tables
    repo = tmp_path / "hf-hub" / "datasets--someone--snap"
    commit = "0" * 40
    write_parquet_folder(repo / "snapshots" / commit, {"train": MATH})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert len(load_source("hf:someone/snap", **MAPPING)) == 3


def test_a_hub_id_not_in_the_cache_says_so():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(DataError) as info:
        load_source("hf:someone/not-downloaded", **MAPPING)
    message = str(info.value)
    assert message.startswith("hf:someone/not-downloaded: the hub dataset 'someone/not-downloaded'")
    assert "not in the local cache" in message and "HF_HUB_OFFLINE=1" in message


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="hf:/nowhere/at/all: no folder at"):
        load_source("hf:/nowhere/at/all")


def experiment(tmp_path, train):
    """An experiment file on the quickstart's base whose data.train is `train`."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": os.path.abspath("experiments/quickstart.yaml"),
                "name": "hf",
                "data": {"train": train, "eval": []},
                "output": {"root": str(tmp_path / "runs")},
            }
        )
    )
    return load_experiment(path)


def test_a_mapped_source_plans_and_a_missing_column_is_named_at_validation(tmp_path):
    folder = write_parquet_folder(tmp_path / "deepmath", {"train": MATH})
    good = {"source": f"hf:{folder}", "split": "train", **MAPPING}
    plan = make_plan(experiment(tmp_path, [good, "builtin:code/train"]))
    assert plan.sources_of["math"] == [f"hf:{folder} (split train)"]
    assert sum(p.domain == "math" for p in plan.train) == 3

    typo = {**good, "columns": {"prompt": "question", "answer": "answer"}}
    with pytest.raises(DataError) as info:
        make_plan(experiment(tmp_path, [typo]))
    assert str(info.value) == (
        f"hf:{folder}: columns.answer: the data has no column 'answer'; its columns are "
        "'question', 'final_answer', 'difficulty'"
    )


def test_the_mapping_applies_to_plain_files_too(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"q": "What is 1+1?", "a": 2, "kind": "math"}) + "\n")
    [problem] = load_source(str(path), columns={"prompt": "q", "answer": "a", "domain": "kind"})
    assert (problem.prompt, problem.answer, problem.domain) == ("What is 1+1?", "2", "math")
    with pytest.raises(DataError, match="columns.tests: the data has no column 'io'; its columns"):
        load_source(str(path), columns={"prompt": "q", "tests": "io"})
    with pytest.raises(DataError, match="`split` applies to hf: sources, not to a file"):
        load_source(str(path), split="train")
    with pytest.raises(DataError, match="`columns` applies to row sources"):
        load_source("humaneval", columns={"prompt": "text"})


def test_a_chat_prompt_fills_messages_and_its_last_user_turn_is_the_prompt(tmp_path):
    chat = [
        {"role": "system", "content": "Answer in \\boxed{}."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "\\boxed{4}"},
        {"role": "user", "content": "And 3+3?"},
    ]
    folder = write_parquet_folder(
        tmp_path / "chats", {"train": {"messages": [chat], "answer": ["6"]}}
    )
    [problem] = load_source(f"hf:{folder}", domain="math", columns={"prompt": "messages"})
    assert problem.prompt == "And 3+3?" and problem.messages == chat
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": [{"role": "system", "content": "x"}], "answer": "1"}))
    with pytest.raises(DataError, match="row 1: field 'prompt': the chat has no non-empty user"):
        load_source(str(bad), domain="math")


def test_a_dotted_column_reads_inside_a_struct_column(tmp_path):
    """verl-format parquet (the release's files): a chat prompt and the ground truth nested in a
    `reward_model` struct."""
    tests = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    rows = {
        "prompt": [[{"role": "user", "content": "Add two numbers."}]],
        "ability": ["code"],
        "reward_model": [{"style": "rule", "ground_truth": tests}],
    }
    folder = write_parquet_folder(tmp_path / "eurus", {"train": rows})
    columns = {"tests": "reward_model.ground_truth"}
    (problem,) = load_source(f"hf:{folder}", domain="code", columns=columns)
    assert problem.prompt == "Add two numbers." and problem.tests["outputs"] == ["3\n"]
    with pytest.raises(
        DataError, match=r"column 'reward_model.truth': reward_model has no key 'truth'"
    ):
        load_source(f"hf:{folder}", domain="code", columns={"tests": "reward_model.truth"})
    with pytest.raises(
        DataError, match=r"columns.tests: the data has no column 'reward.ground_truth'"
    ):
        load_source(f"hf:{folder}", domain="code", columns={"tests": "reward.ground_truth"})
