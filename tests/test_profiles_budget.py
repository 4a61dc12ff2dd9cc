import json

import pytest

from edgezoo.edge.budget import check_budget
from edgezoo.edge.profiles import ProfileError, get_profile, load_profiles
from edgezoo.base.errors import UnknownTargetError


def test_nrf52840_profile():
    p = get_profile("nrf52840")
    assert (p.flash_bytes, p.ram_bytes, p.clock_mhz, p.micro) == (1024 * 1024, 256 * 1024, 64, True)
    assert not get_profile("rpi4").micro


def test_unknown_target_lists_known_ones():
    with pytest.raises(UnknownTargetError, match=r"unknown target 'nrf52480'.*Did you mean nrf52840"):
        get_profile("nrf52480")


def test_budget_arithmetic():
    p = get_profile("nrf52840")
    ok = check_budget(p, 200_000, 60_000)
    assert ok["fits"] and ok["flash"]["used_bytes"] == 200_000 + p.flash_reserve_bytes
    assert ok["ram"]["used_bytes"] == 60_000 + p.ram_margin_bytes
    too_big_ram = check_budget(p, 200_000, p.ram_bytes - p.ram_margin_bytes + 1)
    assert not too_big_ram["fits"] and too_big_ram["flash"]["fits"]
    too_big_flash = check_budget(p, p.flash_bytes - p.flash_reserve_bytes + 1, 1000)
    assert not too_big_flash["fits"] and too_big_flash["ram"]["fits"]


def test_user_profiles_file(tmp_path):
    fields = dict(description="x", core="cortex-m33", clock_mhz=100, flash_bytes=512 * 1024,
                  ram_bytes=128 * 1024, flash_reserve_bytes=0, ram_margin_bytes=0,
                  runtime="tflite-micro")
    path = tmp_path / "boards.json"
    path.write_text(json.dumps({"myboard": fields}))
    assert get_profile("myboard", extra=path).ram_bytes == 128 * 1024
    path.write_text(json.dumps({"bad": {**fields, "ram_bytes": -1}}))
    with pytest.raises(ProfileError, match="ram_bytes must be a number >= 0"):
        load_profiles(path)
    del fields["flash_bytes"]
    path.write_text(json.dumps({"bad": fields}))
    with pytest.raises(ProfileError, match="missing flash_bytes"):
        load_profiles(path)
