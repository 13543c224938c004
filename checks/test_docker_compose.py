"""Static check of docker-compose.yml (not run here: no Docker on the test machines)."""

import re
from pathlib import Path, PurePosixPath

import yaml

ADDON = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ADDON / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# A version tag (digits first, never "latest"), optionally pinned further by digest.
PINNED = re.compile(
    r"^(?P<name>[a-z0-9./-]+):(?P<tag>[0-9][\w.-]*)(@sha256:[0-9a-f]{64})?$"
)


def _option(command, name):
    """Value of ``--name value`` or ``--name=value`` in an argument list."""
    for index, argument in enumerate(command):
        if argument == name:
            return command[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return None


def test_images_are_the_official_ones_pinned():
    images = {
        name: PINNED.match(service["image"]) for name, service in SERVICES.items()
    }
    assert all(images.values()), {n: s["image"] for n, s in SERVICES.items()}
    odoo = images["odoo"]
    assert odoo["name"] == "odoo" and odoo["tag"].startswith("19.0"), odoo.string
    assert images["db"]["name"] == "postgres", images["db"].string
    assert int(images["db"]["tag"].split(".")[0]) >= 13, "SPEC: PostgreSQL 13+"


def test_this_checkout_is_mounted_as_the_addon_on_the_addons_path():
    odoo = SERVICES["odoo"]
    mounts = [volume.split(":") for volume in odoo["volumes"]]
    targets = [
        PurePosixPath(target) for source, target, *_ in mounts if source in (".", "./")
    ]
    assert len(targets) == 1, odoo["volumes"]
    assert targets[0].name == "fusion_billing", (
        "Odoo finds a module by its directory name"
    )
    addons_path = _option(odoo["command"], "--addons-path").split(",")
    assert str(targets[0].parent) in addons_path, addons_path


def test_odoo_serves_one_database_from_the_compose_postgres():
    odoo = SERVICES["odoo"]
    assert _option(odoo["command"], "--database"), "the API routes need one database"
    assert odoo["environment"]["HOST"] == "db"
    assert odoo["environment"]["USER"] == SERVICES["db"]["environment"]["POSTGRES_USER"]
    assert "db" in odoo["depends_on"]
