"""Port features, extra accounts, star codes and restriction classes from the pages and the API: forms
round-trip, errors beside their fields, extra-account passwords write-only, CSV with feature columns,
copying features but not accounts, only the changed port re-created."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from aiohttp import FormData

from firmware.config.schema import PortFeatures
from tests.web.harness import CONFIG, Site, run
from web.fields import MASK

CLASSES = CONFIG + """
[ports.features]
restrict = ["premium"]
[[ports.accounts]]
extension = "301"
password = "business-secret"
display_name = "Business"
prefix = "8"
[restriction_classes]
international = "011x."
premium = "1900xxxxxxx"
"""
"""The harness config (ports 101, 102) with two classes, port 2 barred from premium numbers and
holding a second account 301."""


def _checked(html: str, name: str) -> list[str]:
    """The values of the ticked checkboxes called `name`."""
    tags = re.findall(rf'<input type="checkbox" name="{re.escape(name)}"[^>]*>', html)
    return [re.search(r'value="([^"]*)"', t).group(1) for t in tags if " checked" in t]  # type: ignore[union-attr]


def test_features_form_round_trips_and_applies_to_that_port_only(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        page = await (await s.client.get("/ports/1")).text()
        assert re.findall(r'name="features.restrict" value="([^"]+)"', page) == ["international", "premium"]
        assert 'name="features.disabled" value="speed_dial"' in page and "<legend>Features</legend>" in page
        lines = dict(s.gateway.lines)
        form = [("csrf", await s.csrf()), ("extension", "101"), ("enabled", "on"),
                ("features.forward_busy", "102"), ("features.forward_no_answer_s", "30"),
                ("features.dnd", "on"), ("features.restrict", ""), ("features.restrict", "international"),
                ("features.disabled", ""), ("features.disabled", "redial"),
                ("features.disabled", "speed_dial")]
        response = await s.client.post("/ports/1", data=form)
        html = await response.text()
        assert response.status == 200 and "Applied now to port 1." in html, html
        assert s.gateway.config.ports[0].features == PortFeatures(
            forward_busy="102", forward_no_answer_s=30, dnd=True, restrict=("international",),
            disabled=("redial", "speed_dial"))
        assert s.store.load().ports[0].features == s.gateway.config.ports[0].features  # saved
        assert s.gateway.lines[1] is lines[1] and s.gateway.lines[0] is not lines[0]
        assert _checked(html, "features.restrict") == ["international"]
        assert _checked(html, "features.disabled") == ["redial", "speed_dial"]
        assert 'name="features.dnd" id="f-features-dnd" checked' in html
        assert 'id="f-features-forward_busy" value="102"' in html
        # nothing ticked clears the lists (the hidden empty input still names the field)
        form = [("csrf", await s.csrf()), ("extension", "101"), ("enabled", "on"), ("features.restrict", ""),
                ("features.disabled", "")]
        assert (await s.client.post("/ports/1", data=form)).status == 200
        kept = s.gateway.config.ports[0].features
        assert (kept.restrict, kept.disabled, kept.dnd, kept.forward_busy) == ((), (), False, "102")
        # a form without the fieldset (an older page, a script) leaves the features alone
        await s.client.put("/api/v1/config/ports/1", headers={"X-CSRF-Token": await s.csrf()},
                           json={"features": {"dnd": True}})
        assert s.gateway.config.ports[0].features.forward_busy == "102"  # a partial sub-table merges
        form2 = {"csrf": await s.csrf(), "extension": "101", "enabled": "on", "display_name": "Hall"}
        assert (await s.client.post("/ports/1", data=form2)).status == 200
        assert s.gateway.config.ports[0].features.dnd is True

    run(tmp_path, check, config=CLASSES)


def test_a_bad_forward_target_and_an_unknown_class_are_shown_beside_their_fields(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf()
        form = [("csrf", csrf), ("extension", "101"), ("enabled", "on"), ("features.forward_always", "55x"),
                ("features.restrict", ""), ("features.restrict", "intl"), ("features.disabled", "")]
        response = await s.client.post("/ports/1", data=form)
        html = await response.text()
        assert response.status == 422
        assert re.search(r'id="f-features-forward_always-error">must be 1-32 of 0-9 \* #<', html)
        assert "id=\"f-features-restrict-error\">no restriction class &#x27;intl&#x27;; defined: " \
               "international, premium<" in html
        assert 'value="55x"' in html and _checked(html, "features.restrict") == ["intl"]  # kept as typed
        assert "see the marked fields" in html
        assert s.gateway.config.ports[0].features == PortFeatures()  # nothing saved
        bad = await s.client.put("/api/v1/config/ports/1", headers={"X-CSRF-Token": csrf},
                                 json={"features": {"restrict": ["intl"], "forward_no_answer_s": 2}})
        assert bad.status == 422
        errors = {e["field"]: e["message"] for e in (await bad.json())["errors"]}
        assert errors["ports[0].features.restrict[0]"].startswith("no restriction class 'intl'")
        assert errors["ports[0].features.forward_no_answer_s"] == "must be 6..300, got 2"

    run(tmp_path, check, config=CLASSES)


def test_extra_account_password_is_write_only(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf()
        headers = {"X-CSRF-Token": csrf}
        port = await (await s.client.get("/api/v1/config/ports/2")).json()
        assert port["accounts"] == [{"extension": "301", "auth_user": "", "password": MASK,
                                     "display_name": "Business", "ring_cadence": "", "prefix": "8",
                                     "star_code": ""}]
        for path in ("/api/v1/config", "/api/v1/config/ports/2", "/ports/2", "/ports.csv"):
            assert "business-secret" not in await (await s.client.get(path)).text(), path
        # the document read back and sent again keeps the secret (MASK matched by extension)
        resent = {**port, "accounts": [{**port["accounts"][0], "display_name": "Office"}]}
        kept = await s.client.put("/api/v1/config/ports/2", headers=headers, json=resent)
        assert kept.status == 200 and "business-secret" not in await kept.text()
        account = s.gateway.config.ports[1].accounts[0]
        assert (account.display_name, account.password.reveal()) == ("Office", "business-secret")
        # a mask for an account that has no password to keep is refused, never saved as the password
        new = await s.client.put("/api/v1/config/ports/2", headers=headers, json={"accounts": [
            port["accounts"][0], {"extension": "302", "password": MASK}]})
        assert new.status == 422
        assert [e["field"] for e in (await new.json())["errors"]] == ["ports[1].accounts[1].password"]
        # the page: an empty password keeps it, a new one replaces it
        page = await s.client.post("/ports/2/accounts/1", data={"csrf": csrf, "extension": "301",
                                                                 "password": "", "prefix": "7",
                                                                 "star_code": "*81"})
        html = await page.text()
        assert page.status == 200 and "Applied now to port 2." in html and "business-secret" not in html
        account = s.gateway.config.ports[1].accounts[0]
        assert (account.prefix, account.star_code) == ("7", "*81")
        assert account.password.reveal() == "business-secret"
        assert 'id="f-a1-password" value="" autocomplete="new-password" placeholder="******"' in html
        added = await s.client.post("/ports/2/accounts/new", data={"csrf": csrf, "extension": "302",
                                                                   "password": "second-secret"})
        assert added.status == 200 and "second-secret" not in await added.text()
        assert [a.extension for a in s.gateway.config.ports[1].accounts] == ["301", "302"]
        assert 'password = "second-secret"' in s.store.path.read_text()  # the file keeps it (0600)
        removed = await s.client.post("/ports/2/accounts/1/remove", data={"csrf": csrf})
        assert removed.status == 200 and "Account removed." in await removed.text()
        assert [a.extension for a in s.gateway.config.ports[1].accounts] == ["302"]
        assert (await s.client.post("/ports/2/accounts/5", data={"csrf": csrf})).status == 404

    run(tmp_path, check, config=CLASSES)


def test_account_form_errors_stay_with_that_account(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        response = await s.client.post("/ports/2/accounts/new", data={
            "csrf": await s.csrf(), "extension": "101", "password": "typed-secret", "prefix": "8x"})
        html = await response.text()
        assert response.status == 422
        assert re.search(r'id="f-a2-extension-error">101 is already used by ports\[0\]<', html)
        assert re.search(r'id="f-a2-prefix-error">must be 1-4 of 0-9 \* #<', html)
        assert '<details id="account-new" open>' in html and 'value="8x"' in html
        assert "typed-secret" not in html  # not even the one just typed
        assert len(s.gateway.config.ports[1].accounts) == 1

    run(tmp_path, check, config=CLASSES)


def test_star_codes_and_restriction_classes_page(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/star-codes")
        page = await (await s.client.get("/star-codes")).text()
        assert 'id="f-star_codes-forward_always_on" value="*72"' in page
        assert 'name="class-name-0" id="f-class-0-name" value="international"' in page
        form = {"csrf": csrf, "star_codes.dnd_on": "*7", "class-name-0": "international",
                "class-plan-0": "011x.", "class-name-1": "premium", "class-plan-1": "1900xxxxxxx"}
        refused = await s.client.post("/star-codes", data=form)
        html = await refused.text()
        assert refused.status == 422
        assert re.search(r'id="f-star_codes-dnd_on-error">\*7 is the same as or the start of '
                         r"forward_always_on \(\*72\)<", html)
        assert 'id="f-star_codes-dnd_on" value="*7"' in html
        assert dict(s.gateway.config.star_codes)["dnd_on"] == "*78"
        bad_plan = await s.client.post("/star-codes", data={**form, "star_codes.dnd_on": "*78",
                                                             "class-plan-0": "011x.(("})
        assert bad_plan.status == 422 and 'id="f-class-0-error">' in await bad_plan.text()
        lines = dict(s.gateway.lines)
        saved = await s.client.post("/star-codes", data={
            **form, "star_codes.dnd_on": "*55", "class-name-2": "local", "class-plan-2": "[2-9]xxxxxx"})
        assert saved.status == 200, await saved.text()
        assert dict(s.gateway.config.star_codes)["dnd_on"] == "*55"
        assert dict(s.gateway.config.restriction_classes)["local"] == "[2-9]xxxxxx"
        assert all(s.gateway.lines[p] is not lines[p] for p in lines)  # every line holds the codes
        # premium is ticked on port 2: removing it is refused and says why
        in_use = await s.client.post("/star-codes", data={**form, "star_codes.dnd_on": "*55",
                                                           "class-remove-1": "on"})
        assert in_use.status == 422
        why = "ports[1].features.restrict[0]: no restriction class &#x27;premium&#x27;"
        assert why in await in_use.text()
        assert "premium" in dict(s.gateway.config.restriction_classes)

    run(tmp_path, check, config=CLASSES)


def test_star_codes_and_classes_api(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        headers = {"X-CSRF-Token": await s.csrf()}
        codes = await (await s.client.get("/api/v1/config/star_codes")).json()
        assert codes["forward_always_on"] == "*72" and len(codes) == 13
        conflict = await s.client.put("/api/v1/config/star_codes", headers=headers, json={"redial": "*6"})
        assert conflict.status == 422
        assert [e["field"] for e in (await conflict.json())["errors"]] == ["star_codes.redial"]
        ok = await s.client.put("/api/v1/config/restriction_classes", headers=headers,
                                json={"operator": "0", "international": None})
        assert ok.status == 200
        assert (await ok.json())["config"] == {"premium": "1900xxxxxxx", "operator": "0"}
        assert dict(s.gateway.config.restriction_classes) == {"premium": "1900xxxxxxx", "operator": "0"}
        bad = await s.client.put("/api/v1/config/restriction_classes", headers=headers, json={"Bad": "1"})
        assert (await bad.json())["errors"][0]["field"] == "restriction_classes.Bad"
        whole = await (await s.client.get("/api/v1/config")).json()
        assert whole["star_codes"]["dnd_on"] == "*78" and whole["restriction_classes"]["operator"] == "0"

    run(tmp_path, check, config=CLASSES)


def test_csv_round_trip_with_features_and_copy(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/ports")
        await s.client.put("/api/v1/config/ports/1", headers={"X-CSRF-Token": csrf}, json={"features": {
            "dnd": True, "forward_busy": "102", "restrict": ["international", "premium"],
            "disabled": ["redial", "speed_dial"]}})
        exported = await (await s.client.get("/ports.csv")).text()
        rows = list(csv.DictReader(io.StringIO(exported)))
        assert "features.warm_line_s" in rows[0] and not any(c.startswith("accounts") for c in rows[0])
        assert (rows[0]["features.dnd"], rows[0]["features.restrict"], rows[0]["features.disabled"]) == (
            "true", "international, premium", "redial, speed_dial")
        assert rows[1]["features.restrict"] == "premium" and rows[1]["features.forward_no_answer_s"] == "20"
        rows[0]["features.dnd"], rows[0]["features.restrict"] = "false", "premium"
        rows[1]["features.forward_always"] = "101"
        out = io.StringIO()
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", out.getvalue().encode(), filename="ports.csv", content_type="text/csv")
        imported = await s.client.post("/ports/import", data=form)
        assert imported.status == 200, await imported.text()
        one, two = s.gateway.config.ports[:2]
        assert (one.features.dnd, one.features.restrict, one.features.disabled) == (
            False, ("premium",), ("redial", "speed_dial"))
        assert two.features.forward_always == "101"
        assert [a.extension for a in two.accounts] == ["301"]  # accounts are not in the CSV: kept
        assert two.accounts[0].password.reveal() == "business-secret"
        # copying port 1 to 2 and 3 copies its features; port 2 keeps its own accounts
        copied = await s.client.post("/ports/copy", data={"csrf": csrf, "from": "1", "to": ["2"]})
        assert copied.status == 200, await copied.text()
        two = s.gateway.config.ports[1]
        assert two.features == s.gateway.config.ports[0].features and two.extension == "102"
        assert [a.extension for a in two.accounts] == ["301"]

    run(tmp_path, check, config=CLASSES)
