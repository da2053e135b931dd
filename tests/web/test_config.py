"""Config pages and API: per-field validation errors, write-only secrets, atomic save + live apply,
copy/import/export of ports, backup and restore, history, the event stream and the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from pathlib import Path

from aiohttp import FormData, WSMsgType

from firmware.config import PortConfig, SipConfig
from firmware.config.schema import ExtraAccount, PortFeatures
from firmware.line.features import DEFAULT_STAR_CODES, FEATURES
from firmware.store.history import CallRecord
from hal.sim import SimBoard
from tests.web.harness import Site, run
from web.fields import MASK, section_fields
from web.openapi import openapi_document


def test_page_shows_each_error_beside_its_field_and_keeps_the_input(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/ports/1")
        form = {f.name: str(f.default or "") for f in section_fields("ports") if f.kind != "flag"}
        form.update(csrf=csrf, extension="12a", hotline="55x", display_name="Hall", enabled="on")
        response = await s.client.post("/ports/1", data=form)
        html = await response.text()
        assert response.status == 422
        assert re.search(r'id="f-extension-error">must be 2-15 digits<', html)
        assert re.search(r'id="f-hotline-error">must be 1-32 of 0-9 \* #<', html)
        assert 'value="12a"' in html and 'value="Hall"' in html  # what was typed stays
        assert s.gateway.config.ports[0].extension == "101"  # nothing saved, nothing applied
        sip = await s.client.post("/sip", data={"csrf": csrf, "registrar": "pbx:99999", "expires": "soon"})
        html = await sip.text()
        assert sip.status == 422 and 'id="f-registrar-error">must be host or host:port' in html
        assert 'id="f-expires-error">must be an integer, got a string' in html

    run(tmp_path, check)


def test_api_422_lists_every_problem_per_field(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        headers = {"X-CSRF-Token": await s.csrf()}
        response = await s.client.put("/api/v1/config/sip", headers=headers,
                                      json={"expires": 5, "transport": "carrier-pigeon", "pasword": "x"})
        assert response.status == 422
        errors = {e["field"]: e["message"] for e in (await response.json())["errors"]}
        assert errors["sip.expires"] == "must be 60..86400, got 5"
        assert errors["sip.transport"].startswith("must be one of udp, tcp, tls")
        assert "unknown key" in errors["sip.pasword"]
        bad = await s.client.put("/api/v1/config/ports/2", headers=headers, json={"extension": "101"})
        assert (await bad.json())["errors"] == [{"field": "ports[1].extension",
                                                 "message": "101 is already used by ports[0]"}]
        assert (await s.client.put("/api/v1/config/sip", headers=headers, data="[]")).status == 400

    run(tmp_path, check)


def test_secrets_are_write_only(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        headers = {"X-CSRF-Token": await s.csrf()}
        port = await (await s.client.get("/api/v1/config/ports/1")).json()
        assert port["password"] == MASK and port["display_name"] == "Kitchen"
        assert "kitchen-secret" not in await (await s.client.get("/api/v1/config")).text()
        assert "kitchen-secret" not in await (await s.client.get("/ports/1")).text()
        kept = await s.client.put("/api/v1/config/ports/1", headers=headers,
                                  json={**port, "display_name": "Kitchen wall"})
        assert kept.status == 200
        assert s.gateway.config.ports[0].password.reveal() == "kitchen-secret"
        csrf = headers["X-CSRF-Token"]
        form = {"csrf": csrf, "extension": "101", "password": "", "enabled": "on", "display_name": "K"}
        assert (await s.client.post("/ports/1", data=form)).status == 200
        assert s.gateway.config.ports[0].password.reveal() == "kitchen-secret"  # empty keeps it
        await s.client.put("/api/v1/config/ports/1", headers=headers, json={"password": "new-secret"})
        assert s.gateway.config.ports[0].password.reveal() == "new-secret"
        assert 'password = "new-secret"' in s.store.path.read_text()  # the file keeps it (0600)

    run(tmp_path, check)


def test_save_is_atomic_and_applies_live_to_the_changed_port_only(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        lines = dict(s.gateway.lines)
        csrf = await s.csrf()
        response = await s.client.put("/api/v1/config/ports/2", headers={"X-CSRF-Token": csrf},
                                      json={"hotline": "101", "polarity_reversal": True})
        body = await response.json()
        assert response.status == 200 and body["applied"]["reconfigured_ports"] == [2]
        assert s.gateway.lines[0] is lines[0] and s.gateway.lines[1] is not lines[1]
        assert s.gateway.lines[1].hotline == "101" and s.gateway.lines[1].polarity_reversal
        saved = s.store.load()
        assert saved.ports[1] == s.gateway.config.ports[1] and saved.ports[1].hotline == "101"
        assert s.store.backup_path.exists()  # the previous file, for undo by hand
        new = await s.client.put("/api/v1/config/ports/3", headers={"X-CSRF-Token": csrf},
                                 json={"extension": "103"})
        assert (await new.json())["applied"]["reconfigured_ports"] == [3] and 2 in s.gateway.lines
        assert s.gateway.extensions["103"] == 2
        page = await s.client.post("/regional", data={"csrf": csrf, "country": "DE", "callerid": "auto",
                                                      "ring_cadence": "normal"})
        html = await page.text()
        assert page.status == 200 and "Applied now to port 1, 2, 3" in html
        assert s.gateway.country == "DE" and "Germany (DE) on the line" in html and "425 Hz" in html

    run(tmp_path, check)


def test_copy_export_and_import_ports(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/ports")
        await s.client.put("/api/v1/config/ports/1", headers={"X-CSRF-Token": csrf},
                           json={"dial_plan": "(1xx|*xx)", "hotline": "", "ring_cadence": "bellcore-dr3"})
        copied = await s.client.post("/ports/copy", data={"csrf": csrf, "from": "1", "to": ["2"]})
        assert copied.status == 200
        one, two = s.gateway.config.ports[:2]
        assert (two.dial_plan, two.ring_cadence, two.extension, two.display_name) == (
            "(1xx|*xx)", "bellcore-dr3", "102", "")  # identity stays
        exported = await (await s.client.get("/ports.csv")).text()
        assert exported.splitlines()[0].startswith("port,extension,enabled,auth_user,password")
        assert "kitchen-secret" not in exported
        edited = exported.replace("Kitchen", "Scullery").replace(",102,", ",112,")
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", edited.encode(), filename="ports.csv", content_type="text/csv")
        imported = await s.client.post("/ports/import", data=form)
        assert imported.status == 200, await imported.text()
        one, two = s.gateway.config.ports[:2]
        assert (one.display_name, two.extension) == ("Scullery", "112")
        assert one.password.reveal() == "kitchen-secret"  # empty in the CSV: kept
        broken = FormData()
        broken.add_field("csrf", csrf)
        broken.add_field("file", b"port,extension\n1,9\n", filename="p.csv", content_type="text/csv")
        refused = await s.client.post("/ports/import", data=broken)
        assert refused.status == 422 and "ports[0].extension: must be 2-15 digits" in await refused.text()
        assert s.gateway.config.ports[0].extension == "101"

    run(tmp_path, check)


def test_backup_and_validated_restore(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/system")
        backup = await (await s.client.get("/system/backup")).text()
        assert tomllib.loads(backup)["ports"][0]["password"] == "kitchen-secret"  # a backup is complete

        async def restore(text: str) -> tuple[int, str]:
            form = FormData()
            form.add_field("csrf", csrf)
            form.add_field("file", text.encode(), filename="hookflash.toml")
            response = await s.client.post("/system/restore", data=form)
            return response.status, await response.text()

        status, html = await restore(backup.replace('"Kitchen"', '"Kitchen 2"').replace("expires = 3600",
                                                                                          "expires = 3"))
        assert status == 422 and "sip.expires: must be 60..86400, got 3" in html
        assert s.gateway.config.ports[0].display_name == "Kitchen"
        assert (await restore("not = [toml"))[0] == 422
        status, html = await restore(backup.replace('"Kitchen"', '"Kitchen 2"'))
        assert status == 200 and "Restored." in html and s.gateway.config.ports[0].display_name == "Kitchen 2"

    run(tmp_path, check)


def test_history_search_filter_and_csv(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        history = s.gateway.history
        assert history is not None
        now = time.time()
        history.add(CallRecord(0, "out", "101", "5551234", now - 100, now - 95, now - 35, "hangup"))
        history.add(CallRecord(1, "in", "=HYPERLINK(\"x\")", "102", now - 50, None, now - 40, "cancelled"))
        calls = (await (await s.client.get("/api/v1/history?search=555")).json())["calls"]
        assert [(c["port"], c["callee"], c["duration_s"]) for c in calls] == [(1, "5551234", 60.0)]
        calls = (await (await s.client.get("/api/v1/history?port=2&direction=in")).json())["calls"]
        assert len(calls) == 1 and calls[0]["answer"] is None
        assert (await s.client.get("/api/v1/history?port=9")).status == 400
        page = await (await s.client.get("/history?direction=out")).text()
        assert "5551234" in page and "HYPERLINK" not in page
        text = await (await s.client.get("/history.csv")).text()
        assert text.splitlines()[0].startswith("id,port,direction,caller,callee")
        assert "'=HYPERLINK" in text  # a spreadsheet must not run a caller's formula (CSV injection)

    run(tmp_path, check)


def test_event_stream_follows_hook_and_call_state(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        board = s.gateway.board
        assert isinstance(board, SimBoard)
        async with s.client.ws_connect("/api/v1/events") as ws:
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "snapshot" and [p["port"] for p in first["ports"]] == [1, 2, 3]
            assert first["ports"][0]["hook"] == "on" and first["ports"][0]["registration"] == "intercom"
            board.phones[0].lift(board.now())
            seen: list[dict[str, object]] = []
            async with asyncio.timeout(5):
                while not any(p["hook"] == "off" and p["call"] == "dialtone" for p in seen):
                    message = await ws.receive()
                    assert message.type is WSMsgType.TEXT
                    seen.append(message.json()["port"])
            assert all(p["port"] == 1 for p in seen)
        status = await (await s.client.get("/api/v1/status")).json()
        assert status["ports"][0]["hook"] == "off" and status["system"]["version"]

    run(tmp_path, check)


def test_openapi_is_generated_from_the_schema() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    assert set(schemas["PortConfig"]["properties"]) == set(PortConfig.__dataclass_fields__)
    assert set(schemas["SipConfig"]["properties"]) == set(SipConfig.__dataclass_fields__)
    assert schemas["SipConfig"]["properties"]["transport"]["enum"] == ["udp", "tcp", "tls"]
    assert schemas["PortConfig"]["properties"]["password"]["writeOnly"] is True
    assert schemas["PortConfig"]["required"] == ["extension"]
    assert "registrar" in schemas["SipConfig"]["properties"]["registrar"]["description"].lower() or \
        "PBX" in schemas["SipConfig"]["properties"]["registrar"]["description"]
    assert "/api/v1/config/ports/{n}" in doc["paths"] and "/api/v1/config/sip" in doc["paths"]
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    port = schemas["PortConfig"]["properties"]
    assert port["features"] == {"$ref": "#/components/schemas/PortFeatures"}
    assert port["accounts"] == {"type": "array", "items": {"$ref": "#/components/schemas/ExtraAccount"}}
    assert set(schemas["PortFeatures"]["properties"]) == set(PortFeatures.__dataclass_fields__)
    assert set(schemas["ExtraAccount"]["properties"]) == set(ExtraAccount.__dataclass_fields__)
    assert schemas["ExtraAccount"]["properties"]["password"]["writeOnly"] is True
    assert schemas["ExtraAccount"]["required"] == ["extension"]
    assert schemas["PortFeatures"]["properties"]["disabled"]["items"]["enum"] == list(FEATURES)
    assert "restriction_classes" in schemas["PortFeatures"]["properties"]["restrict"]["description"]
    assert set(schemas["StarCodes"]["properties"]) == set(DEFAULT_STAR_CODES)
    assert schemas["RestrictionClasses"]["additionalProperties"]["type"] == "string"
    for name in ("star_codes", "restriction_classes"):
        assert set(doc["paths"][f"/api/v1/config/{name}"]) == {"get", "put"}
        assert "422" in doc["paths"][f"/api/v1/config/{name}"]["put"]["responses"]


def test_a_busy_port_shows_its_settings_wait_for_the_call_to_end(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        board = s.gateway.board
        assert isinstance(board, SimBoard)
        board.phones[0].lift(board.now())
        async with asyncio.timeout(5):
            while s.gateway.port_status(0)["call"] != "dialtone":
                await asyncio.sleep(0.02)
        response = await s.client.put("/api/v1/config/ports/1", headers={"X-CSRF-Token": await s.csrf()},
                                      json={"hotline": "102"})
        assert (await response.json())["applied"]["deferred_ports"] == [1]
        assert "new settings after this call" in await (await s.client.get("/")).text()
        board.phones[0].hang_up(board.now())
        async with asyncio.timeout(5):
            while s.gateway.port_status(0)["pending_config"]:
                await asyncio.sleep(0.02)
        assert s.gateway.lines[0].hotline == "102"

    run(tmp_path, check)


def test_gains_are_number_fields_on_the_page_and_in_the_api(tmp_path: Path) -> None:
    """No web code names the gains: the schema's float fields come out as number inputs with their
    help, a form's text becomes a number, the schema's errors show at the field, a save applies live."""
    async def check(s: Site) -> None:
        html = await (await s.client.get("/ports/1")).text()
        field = re.search(r'<input type="number" step="any" name="rx_gain_db" id="f-rx_gain_db" value="0.0">'
                          r'<small class="help">([^<]*)</small>', html)
        assert field and field.group(1).startswith("Earpiece volume: dB added to the caller")
        assert 'name="tx_gain_db"' in html and ">Earpiece gain (dB)</label>" in html
        csrf = await s.csrf("/ports/1")
        form = {f.name: str(f.default or "") for f in section_fields("ports") if f.kind != "flag"}
        form.update(csrf=csrf, extension="101", enabled="on", rx_gain_db="+6.5", tx_gain_db="loud")
        html = await (await s.client.post("/ports/1", data=form)).text()
        assert 'id="f-tx_gain_db-error">must be a number of dB, got a string<' in html
        form.update(tx_gain_db="-3")
        assert (await s.client.post("/ports/1", data=form)).status == 200
        assert (s.gateway.config.ports[0].rx_gain_db, s.gateway.config.ports[0].tx_gain_db) == (6.5, -3.0)
        assert s.store.load().ports[0].rx_gain_db == 6.5
        headers = {"X-CSRF-Token": csrf}
        bad = await s.client.put("/api/v1/config/ports/1", headers=headers, json={"rx_gain_db": 12.25})
        assert (await bad.json())["errors"] == [
            {"field": "ports[0].rx_gain_db", "message": "must be -12 to +12 dB in 0.5 dB steps, got 12.25"}]
        ok = await s.client.put("/api/v1/config/ports/1", headers=headers, json={"tx_gain_db": 1.5})
        assert ok.status == 200 and s.gateway.config.ports[0].tx_gain_db == 1.5
        prop = openapi_document()["components"]["schemas"]["PortConfig"]["properties"]["rx_gain_db"]
        assert prop["type"] == "number" and prop["default"] == 0.0 and "Earpiece" in prop["description"]

    run(tmp_path, check)
