"""Static checks of the addon, runnable without Odoo: lint, manifest, data files."""

import ast
import csv
import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ADDON = Path(__file__).resolve().parent.parent
PYTHON_DIRS = ("core", "models", "controllers", "wizards", "tests", "checks", "bench")
MANIFEST = ast.literal_eval((ADDON / "__manifest__.py").read_text())


def _python_files(*dirs):
    for name in dirs:
        yield from sorted((ADDON / name).rglob("*.py"))


def _odoo_model_classes():
    """(file, class node, attributes) of every Odoo model class of the addon."""
    for path in _python_files("models", "wizards"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            attributes = {
                target.id: statement.value
                for statement in node.body
                if isinstance(statement, ast.Assign)
                for target in statement.targets
                if isinstance(target, ast.Name)
            }
            if "_name" in attributes or "_inherit" in attributes:
                yield path, node, attributes


def _new_model_names(stored_only=False):
    return {
        attributes["_name"].value
        for _path, node, attributes in _odoo_model_classes()
        if "_name" in attributes and not (stored_only and _is_abstract(node))
    }


def _is_abstract(node):
    """An AbstractModel has no table, hence no access rights."""
    return any(
        isinstance(base, ast.Attribute) and base.attr == "AbstractModel"
        for base in node.bases
    )


def _run(*command):
    return subprocess.run(
        command, cwd=ADDON, capture_output=True, text=True, check=False, timeout=600
    )


def test_ruff_lint():
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    not shutil.which("pylint", path=str(Path(sys.executable).parent)),
    reason="pylint-odoo is not installed (pip install -r requirements-test.txt)",
)
def test_pylint_odoo():
    result = _run(
        sys.executable,
        "-m",
        "pylint",
        "--rcfile=.pylintrc",
        "--disable=missing-readme",
        "__init__.py",
        "__manifest__.py",
        *(name for name in PYTHON_DIRS if name not in ("core", "checks", "bench")),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest():
    assert MANIFEST["version"].startswith("19.0.")
    assert re.fullmatch(r"19\.0\.\d+\.\d+\.\d+", MANIFEST["version"])
    assert MANIFEST["license"] in {"LGPL-3", "AGPL-3", "GPL-3", "OPL-1"}
    assert "account" in MANIFEST["depends"]
    for key in ("data", "demo"):
        for name in MANIFEST.get(key, []):
            assert (ADDON / name).is_file(), f"{key} file {name} is missing"


def test_every_data_file_is_declared():
    declared = set(MANIFEST["data"]) | set(MANIFEST.get("demo", []))
    on_disk = {
        str(path.relative_to(ADDON))
        for folder in ("data", "views", "security", "wizards", "demo")
        for path in (ADDON / folder).glob("*")
        if path.suffix in (".xml", ".csv")
    }
    assert on_disk <= declared, f"not in the manifest: {sorted(on_disk - declared)}"


def test_python_dependencies_are_declared():
    declared = MANIFEST.get("external_dependencies", {}).get("python", [])
    requirements = (ADDON / "requirements.txt").read_text()
    for package in declared:
        assert package in requirements


@pytest.mark.parametrize(
    "path",
    sorted(
        path
        for folder in ("data", "views", "security", "wizards", "demo")
        for path in (ADDON / folder).glob("*.xml")
    ),
    ids=lambda path: str(path.relative_to(ADDON)),
)
def test_xml_is_valid_odoo_data(path):
    root = ET.parse(path).getroot()
    assert root.tag == "odoo"
    known_models = _new_model_names()
    for record in root.iter("record"):
        assert record.get("id"), f"record without id in {path.name}"
        if record.get("model") == "ir.ui.view":
            model = record.find("field[@name='model']")
            assert model is not None, f"view {record.get('id')} names no model"
            if model.text.startswith("fusion.billing."):
                assert model.text in known_models, (
                    f"view {record.get('id')} targets an undefined model {model.text}"
                )


def test_access_rules_cover_every_model():
    rows = list(csv.DictReader((ADDON / "security" / "ir.model.access.csv").open()))
    assert rows and list(rows[0]) == [
        "id",
        "name",
        "model_id:id",
        "group_id:id",
        "perm_read",
        "perm_write",
        "perm_create",
        "perm_unlink",
    ]
    assert len({row["id"] for row in rows}) == len(rows), "duplicate access ids"
    covered = {row["model_id:id"] for row in rows}
    for name in _new_model_names(stored_only=True):
        assert f"model_{name.replace('.', '_')}" in covered, f"no access rule: {name}"
    assert all(row["group_id:id"] for row in rows), "access rows must name a group"


def test_models_have_a_description():
    for path, node, attributes in _odoo_model_classes():
        if "_name" in attributes:
            assert "_description" in attributes, f"{path.name}: {node.name}"


def test_engine_never_imports_odoo():
    for path in _python_files("core"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "odoo" for name in names), path


def test_readme_is_built_from_its_fragments():
    spec = importlib.util.spec_from_file_location(
        "build_readme", ADDON / "scripts" / "build_readme.py"
    )
    build_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_readme)
    assert (ADDON / "README.md").read_text() == build_readme.build(), (
        "README.md is stale: run python scripts/build_readme.py"
    )


@pytest.mark.parametrize(
    "path", [*sorted((ADDON / "scripts").glob("*.sh")), ADDON / ".ci" / "run"], ids=str
)
def test_shell_scripts_parse(path):
    result = _run("bash", "-n", str(path))
    assert result.returncode == 0, result.stderr


def test_translation_template_is_a_template_of_this_addon():
    """Up to date is checked in the Odoo tier, where Odoo's exporter runs."""
    pot = (ADDON / "i18n" / "fusion_billing.pot").read_text(encoding="utf-8")
    assert "# \t* fusion_billing\n" in pot
    translated = re.findall(r'^msgstr "(.+)"$', pot, flags=re.M)
    assert translated == [], "a template carries no translations"
    assert len(re.findall(r"^msgid ", pot, flags=re.M)) > 100
