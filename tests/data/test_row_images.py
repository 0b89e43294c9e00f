"""Rows with images: paths, bytes in parquet and `datasets` image columns all load to checked
image references; a missing, unreadable or misplaced image is a DataError naming the row."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from uniopd.data import DataError, load_source
from uniopd.data.images import image_digest, open_image


def png(color=(255, 0, 0), size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(images, prompt="How many red squares?", **extra):
    return {"domain": "math", "prompt": prompt, "answer": "2", "images": images, **extra}


def test_paths_are_relative_to_the_data_file_and_open_as_rgb(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png((255, 0, 0)))
    (tmp_path / "img" / "b.png").write_bytes(png((0, 0, 255), size=(5, 5)))
    data = write_jsonl(
        tmp_path / "rows.jsonl",
        [row("img/a.png"), row(["img/a.png", "img/b.png"], prompt="<image> vs <image>: which?")],
    )
    one, two = load_source(str(data))
    assert one.images == (str((tmp_path / "img" / "a.png").resolve()),)
    assert len(two.images) == 2
    image = open_image(two.images[1])
    assert image.mode == "RGB" and image.size == (5, 5) and image.getpixel((0, 0)) == (0, 0, 255)
    assert one.meta == {}  # images are a field of the problem, not a meta column


def test_bytes_in_parquet_and_the_datasets_storage_form(tmp_path):
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    base = {"domain": ["math", "math"], "prompt": ["q1", "q2"], "answer": ["1", "2"]}
    pq.write_table(pa.table({**base, "images": [[red], [red, blue]]}), tmp_path / "lists.parquet")
    structs = [{"bytes": blue, "path": None}, {"bytes": None, "path": "red.png"}]
    pq.write_table(pa.table({**base, "images": structs}), tmp_path / "structs.parquet")
    (tmp_path / "red.png").write_bytes(red)
    first, second = load_source(str(tmp_path / "lists.parquet"))
    assert first.images == (red,) and second.images == (red, blue)
    third, fourth = load_source(str(tmp_path / "structs.parquet"))
    assert third.images == (blue,) and fourth.images == (str(tmp_path / "red.png"),)
    assert open_image(third.images[0]).getpixel((1, 1)) == (0, 0, 255)
    assert image_digest(red) != image_digest(blue)


def test_a_datasets_image_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    pictures = [Image.new("RGB", (4, 4), (0, 255, 0)), Image.new("RGB", (4, 4), (9, 9, 9))]
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    data = {"question": ["q1", "q2"], "answer": ["1", "2"], "image": pictures}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(tmp_path / "ds"))
    problems = load_source(
        f"hf:{tmp_path / 'ds'}",
        domain="math",
        columns={"prompt": "question", "images": "image"},
    )
    assert [open_image(p.images[0]).getpixel((0, 0)) for p in problems] == [
        (0, 255, 0),
        (9, 9, 9),
    ]


def test_the_same_picture_has_one_digest_under_any_path(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "copy.png").write_bytes(png())
    assert image_digest(str(tmp_path / "a.png")) == image_digest(str(tmp_path / "copy.png"))
    assert image_digest(str(tmp_path / "a.png")) == image_digest(png())


@pytest.mark.parametrize(
    "images, prompt, message",
    [
        (
            "missing.png",
            "q",
            r"rows\.jsonl: row 2: field 'images': image 1: no image file at .*missing\.png",
        ),
        (
            ["ok.png", "text.png"],
            "q",
            r"row 2: field 'images': image 2 \(.*text\.png\) is not an image Pillow can read",
        ),
        (
            "cut.png",
            "q",
            r"row 2: field 'images': image 1 \(.*cut\.png\) is not an image Pillow can read",
        ),
        (
            ["ok.png"],
            "<image> and <image>",
            r"row 2: the prompt has 2 <image> placeholders but the row has 1 image;",
        ),
        (
            [],
            "<image> here",
            r"row 2: the prompt has 1 <image> placeholder but the row has 0 images",
        ),
        (3, "q", r"row 2: field 'images': image 1: expected a path, image bytes, .* got int"),
        ({"path": None}, "q", r"row 2: field 'images': image 1: an image record with neither"),
    ],
)
def test_bad_images_are_named_at_load(tmp_path, images, prompt, message):
    (tmp_path / "ok.png").write_bytes(png())
    (tmp_path / "text.png").write_text("not a picture")
    (tmp_path / "cut.png").write_bytes(png(size=(64, 64))[:60])  # a truncated file
    data = write_jsonl(tmp_path / "rows.jsonl", [row("ok.png"), row(images, prompt=prompt)])
    with pytest.raises(DataError, match=message):
        load_source(str(data))


def test_a_chat_prompt_counts_placeholders_over_every_turn(tmp_path):
    (tmp_path / "ok.png").write_bytes(png())
    chat = [
        {"role": "system", "content": "Look at <image>."},
        {"role": "user", "content": "And at <image>: how many?"},
    ]
    data = write_jsonl(tmp_path / "rows.jsonl", [row(["ok.png"], prompt=chat)])
    with pytest.raises(DataError, match="2 <image> placeholders but the row has 1 image"):
        load_source(str(data))
    write_jsonl(data, [row(["ok.png", "ok.png"], prompt=chat)])
    assert len(load_source(str(data))[0].images) == 2


def test_rows_with_images_are_refused_for_a_text_student(tmp_path, capsys, make_checkpoint):
    """A text student would never see the pictures: image rows stop `validate` (exit 2, naming
    a row, its file and the student) instead of training it on their questions alone."""
    import yaml

    from uniopd.commands.cli import main

    (tmp_path / "a.png").write_bytes(png())
    data = write_jsonl(tmp_path / "rows.jsonl", [row("a.png", id="pic-1"), row("a.png")])
    exp = tmp_path / "exp.yaml"
    student = str(make_checkpoint(1))
    exp.write_text(
        yaml.safe_dump(
            {
                "name": "images",
                "student": student,
                "teachers": {"math": student},
                "data": {"train": [str(data)]},
            }
        )
    )
    assert main(["validate", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "data: 2 rows carry images (e.g. pic-1 from" in err and "rows.jsonl" in err
    assert f"student.model ({student}) is a text model" in err
