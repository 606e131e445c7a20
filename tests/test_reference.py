"""The seven Create Object examples of the CommBox reference come out exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from commbox_yaml.build import build
from commbox_yaml.compile import Request
from commbox_yaml.project import load_project
from commbox_yaml.variables import load_variables

HERE = Path(__file__).parent / "reference"
EXAMPLES = sorted(p.stem for p in (HERE / "bodies").glob("*.json"))


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Request]:
    root = tmp_path_factory.mktemp("reference") / "project"
    shutil.copytree(HERE / "project", root)
    project = load_project(root)
    result = build(project, load_variables(project, environ={}))
    assert result.problems == []
    return {r.address: r for r in result.requests}


def test_all_seven_examples_are_covered() -> None:
    assert len(EXAMPLES) == 7


@pytest.mark.parametrize("name", EXAMPLES)
def test_body_is_exactly_the_reference(name: str, requests: dict[str, Request]) -> None:
    expected = (HERE / "bodies" / f"{name}.json").read_text()
    request = requests[name]
    # For uploads the reference shows the form's `data` field: the JSON text of the data object.
    produced = {"data": request.data_field} if request.multipart else request.body
    assert json.dumps(produced, indent=2) + "\n" == expected


def test_attachments_are_uploaded_in_order_with_base_names(requests: dict[str, Request]) -> None:
    request = requests["mail-multiple-attachments"]
    names = [(f.name, f.mime) for f in request.files]
    assert names == [
        ("report.pdf", "application/pdf"),
        ("analysis.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (
            "presentation.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ]
    for attachment in request.files:
        assert attachment.size == attachment.absolute.stat().st_size


def test_whatsapp_preset_follows_the_enum_unless_overridden(requests: dict[str, Request]) -> None:
    assert requests["whatsapp"].data["StreamProviderType"] == 5
