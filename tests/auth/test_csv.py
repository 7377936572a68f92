"""CSV import and export of org units and people: encodings, dry runs, all-or-nothing, audit, Excel safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from auth import org_csv
from auth.models import OrgUnit, RoleAssignment, User

UNITS_JA = "組織コード,組織名,組織名（英語）,階層,上位組織コード,有効\r\n"
USERS_EN = "employee_number,name,kana,email,employment_type,unit_code,locale,active,roles\r\n"


async def count(db, model) -> int:
    """Rows now committed; the rollback also releases SQLite's write lock before the next request."""
    n = (await db.execute(select(func.count()).select_from(model))).scalar_one()
    await db.rollback()
    return n


async def actions(db) -> list[str]:
    rows = list((await db.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars())
    await db.rollback()
    return rows


async def upload(
    client, kind: str, content: bytes | str, *, dry_run: bool | None = False, name: str = "org.csv"
):
    body = content.encode("utf-8") if isinstance(content, str) else content
    params = {} if dry_run is None else {"dry_run": str(dry_run).lower()}
    return await client.post(
        f"/api/org/{kind}/import", params=params, files={"file": (name, body, "text/csv")}
    )


async def test_export_is_excel_friendly_and_reimports_unchanged(hr):
    for kind, total in (("units", 8), ("users", 31)):
        r = await hr.get(f"/api/org/{kind}.csv")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"].startswith("attachment; filename=")
        assert r.content.startswith(b"\xef\xbb\xbf")
        assert b"\r\n" in r.content and b"\n" not in r.content.replace(b"\r\n", b"")
        back = await upload(hr, kind, r.content)
        assert back.status_code == 200, back.text
        report = back.json()
        assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, total)
        assert report["errors"] == [] and report["dry_run"] is False


async def test_english_export_headers_round_trip(sysadmin):
    assert (await sysadmin.patch("/api/me", json={"locale": "en"})).status_code == 200
    r = await sysadmin.get("/api/org/users.csv")
    assert r.content.decode("utf-8-sig").startswith(USERS_EN)
    assert "100006,伊藤 直子" in r.content.decode("utf-8-sig")
    back = await upload(sysadmin, "users", r.content)
    assert back.json()["unchanged"] == 31


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp932"])
async def test_utf8_bom_plain_utf8_and_shift_jis_import(hr, db, encoding):
    text = UNITS_JA + "KIKAKU,企画課,Planning Division,課,SOMU-SOMU,有効\r\nKIKAKU-1,企画係,,係,KIKAKU,\r\n"
    r = await upload(hr, "units", text.encode(encoding))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    names = dict(
        (await db.execute(select(OrgUnit.code, OrgUnit.name).where(OrgUnit.code.like("KIKAKU%")))).all()
    )
    await db.rollback()
    assert names == {"KIKAKU": "企画課", "KIKAKU-1": "企画係"}


async def test_users_with_japanese_labels_import_in_shift_jis(hr, db):
    text = (
        "職員番号,氏名,ふりがな,メールアドレス,任用形態,所属コード\r\n"
        "200001,新井 春子,あらい はるこ,Haruko.Arai@example.lg.jp,会計年度任用職員,JINJI\r\n"
    )
    r = await upload(hr, "users", text.encode("cp932"))
    assert r.status_code == 200, r.text
    query = select(User.name, User.email, User.employment_type, User.active, RoleAssignment.role).join(
        RoleAssignment, RoleAssignment.user_id == User.id
    )
    rows = (await db.execute(query.where(User.employee_number == "200001"))).all()
    await db.rollback()
    assert [tuple(r) for r in rows] == [
        ("新井 春子", "haruko.arai@example.lg.jp", "fixed_term", True, "employee")
    ]


async def test_dry_run_is_the_default_and_writes_nothing(hr, db):
    units, events = await count(db, OrgUnit), await count(db, AuditEvent)
    r = await upload(hr, "units", UNITS_JA + "NEW1,新しい課,,ka,SOMU,\r\n", dry_run=None)
    assert r.status_code == 200
    assert r.json()["dry_run"] is True and r.json()["created"] == 1
    assert (await count(db, OrgUnit), await count(db, AuditEvent)) == (units, events)


async def test_one_bad_row_imports_nothing_and_lists_row_errors(hr, db):
    users = await count(db, User)
    text = (
        USERS_EN
        + "300001,一 太郎,,one@example.lg.jp,regular,JINJI,ja,true,\r\n"
        + "300002,二 次郎,,not-an-email,regular,NOPE,ja,true,\r\n"
        + "300003,三 三郎,,three@example.lg.jp,regular,JINJI,ja,true,\r\n"
    )
    dry = await upload(hr, "users", text, dry_run=True)
    assert dry.status_code == 200
    assert dry.json()["created"] == 3
    assert [(e["row"], e["field"]) for e in dry.json()["errors"]] == [(3, "email"), (3, "unit_code")]
    r = await upload(hr, "users", text)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert "何も取り込んでいません" in body["detail"]
    assert {(e["row"], e["field"], e["code"]) for e in body["errors"]} == {
        (3, "email", "csv.invalid_email"),
        (3, "unit_code", "csv.unknown_unit"),
    }
    assert all(e["message"] and not e["message"].startswith("csv.") for e in body["errors"])
    assert await count(db, User) == users


async def test_row_checks_cover_lengths_duplicates_and_quoted_newlines(hr):
    text = (
        UNITS_JA
        + f"X1,{'長' * 101},,課,SOMU,\r\n"
        + 'X2,"二行の\n名前",,課,SOMU,\r\n'
        + "X2,重複,,課,SOMU,\r\n"
        + "X3,名前,,課長,SOMU,たぶん\r\n"
    )
    r = await upload(hr, "units", text)
    assert r.status_code == 422
    found = {(e["row"], e["field"], e["code"]) for e in r.json()["errors"]}
    assert found == {
        (2, "name", "csv.too_long"),
        (5, "code", "csv.duplicate"),  # the quoted value spans lines 3-4, so this record starts on line 5
        (6, "level", "csv.invalid_choice"),
        (6, "active", "csv.invalid_choice"),
    }


BROKEN = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), 415, "CSVファイルではない"),
    "excel": (b"PK\x03\x04" + b"\x14" * 40, 415, "Excel"),
    "encoding": (b"code,name,level\r\n\x85\x85,x,ka\r\n", 422, "文字コード"),
    "unterminated_quote": (b'code,name,level\r\nA,"open,ka\r\n', 400, "引用符"),
    "no_header": ("SOMU,総務局,局\r\nJINJI,人事課,課\r\n".encode(), 422, "見出し"),
    "wrong_columns": (b"code,name,level\r\nA,a,ka,extra\r\n", 422, "誤り"),
    "empty": (b"\xef\xbb\xbf\r\n", 422, "空"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_broken_files_are_refused_clearly_and_write_nothing(hr, db, case):
    content, status, words = BROKEN[case]
    units, events = await count(db, OrgUnit), await count(db, AuditEvent)
    r = await upload(hr, "units", content)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert (await count(db, OrgUnit), await count(db, AuditEvent)) == (units, events)


async def test_header_problems_name_the_columns(hr):
    r = await upload(hr, "units", "code,name,colour\r\nA,a,red\r\n")
    assert r.status_code == 422
    assert {(e["row"], e["code"]) for e in r.json()["errors"]} == {
        (1, "csv.unknown_column"),
        (1, "csv.missing_column"),
    }


async def test_upload_must_be_a_multipart_form(hr):
    r = await hr.post(
        "/api/org/units/import", content=b"code,name,level\r\n", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]


async def test_too_large_file_is_413(hr):
    r = await upload(hr, "units", b"code,name,level\r\n" + b"x" * org_csv.MAX_BYTES)
    assert r.status_code == 413
    assert "5MB" in r.json()["detail"]


async def test_parent_defined_after_child(hr, db):
    text = UNITS_JA + "CHILD,子係,,係,PARENT,\r\nPARENT,親課,,課,SOMU-SOMU,\r\n"
    r = await upload(hr, "units", text)
    assert r.status_code == 200, r.text
    units = {
        code: (id_, parent)
        for code, id_, parent in (await db.execute(select(OrgUnit.code, OrgUnit.id, OrgUnit.parent_id))).all()
    }
    await db.rollback()
    assert units["CHILD"][1] == units["PARENT"][0]
    assert units["PARENT"][1] == units["SOMU-SOMU"][0]


async def test_cycles_are_detected_in_the_file_and_against_the_tree(hr, db):
    units = await count(db, OrgUnit)
    r = await upload(hr, "units", UNITS_JA + "CA,循環A,,課,CB,\r\nCB,循環B,,課,CA,\r\n")
    assert r.status_code == 422
    assert {(e["row"], e["code"]) for e in r.json()["errors"]} == {(2, "csv.cycle"), (3, "csv.cycle")}
    r = await upload(hr, "units", UNITS_JA + "SOMU,総務局,,局,JINJI,\r\n")  # JINJI sits below SOMU
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "csv.cycle"
    assert await count(db, OrgUnit) == units


async def test_only_hr_and_sysadmin_may_use_csv(employee, anon, make_client):
    for client, status in ((employee, 403), (await make_client("unit_head"), 403), (anon, 401)):
        assert (await client.get("/api/org/users.csv")).status_code == status
        assert (await upload(client, "units", UNITS_JA)).status_code == status
        assert (
            await client.get("/admin/import", headers={"accept": "application/json"})
        ).status_code == status


async def test_applying_writes_one_audit_event_per_change_plus_a_summary(hr, db):
    before = await actions(db)
    text = (
        UNITS_JA
        + "SOMU,総務局,General Affairs Bureau,局,,true\r\n"
        + "JINJI,人事課(新),,課,SOMU-SOMU,\r\n"
        + "NEWU,新課,,課,SOMU,\r\n"
    )
    r = await upload(hr, "units", text)
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (1, 1, 1)
    r = await upload(
        hr,
        "users",
        USERS_EN + "100012,山本 さくら,やまもと さくら,sakura.yamamoto@example.lg.jp,regular,NEWU,en,,\r\n",
    )
    assert r.json()["updated"] == 1
    new = (await actions(db))[len(before) :]
    assert sorted(new) == ["org.import", "org.import", "org.unit.import", "org.unit.import", "user.import"]
    query = select(AuditEvent.before, AuditEvent.after).where(AuditEvent.action == "user.import")
    before_json, after_json = (await db.execute(query)).one()
    await db.rollback()
    assert json.loads(before_json)["locale"] == "ja" and json.loads(after_json)["locale"] == "en"
    assert json.loads(after_json)["password_hash"] == "***"


async def test_role_changes_need_sysadmin(hr, sysadmin, db):
    row = "100012,山本 さくら,,sakura.yamamoto@example.lg.jp,regular,JINJI,ja,true,employee unit_head\r\n"
    r = await upload(hr, "users", USERS_EN + row)
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "csv.roles_need_sysadmin"
    r = await upload(sysadmin, "users", USERS_EN + row)
    assert r.status_code == 200, r.text
    query = select(RoleAssignment.role, RoleAssignment.unit_id, User.unit_id).join(
        User, User.id == RoleAssignment.user_id
    )
    rows = (await db.execute(query.where(User.employee_number == "100012"))).all()
    await db.rollback()
    assert {(role, unit) for role, unit, _ in rows} == {("employee", None), ("unit_head", rows[0][2])}


async def test_export_guards_against_formula_injection(hr, db):
    r = await upload(hr, "units", UNITS_JA + 'EVIL,"=HYPERLINK(""http://x"")",@SUM(1),課,SOMU,\r\n')
    assert r.status_code == 200, r.text
    assert await count(db, OrgUnit) == 9
    exported = (await hr.get("/api/org/units.csv")).content.decode("utf-8-sig")
    assert 'EVIL,"\'=HYPERLINK(""http://x"")",\'@SUM(1),ka,SOMU,true' in exported
    again = await upload(hr, "units", exported)
    assert again.json()["unchanged"] == 9
    name = (await db.execute(select(OrgUnit.name).where(OrgUnit.code == "EVIL"))).scalar_one()
    await db.rollback()
    assert name == '=HYPERLINK("http://x")'


async def test_import_page_checks_then_imports(hr, db):
    page = await hr.get("/admin/import")
    assert page.status_code == 200
    assert page.text.count('enctype="multipart/form-data"') == 2
    assert (
        'name="_csrf_token"' in page.text
        and 'type="checkbox" name="dry_run" value="true" checked' in page.text
    )
    assert 'href="/admin/import"' in page.text  # the nav entry
    token = hr.headers["x-csrftoken"]
    files = {"file": ("u.csv", (UNITS_JA + "PG1,画面課,,課,SOMU,\r\n").encode("cp932"), "text/csv")}
    r = await hr.post("/admin/import/units", data={"dry_run": "true", "_csrf_token": token}, files=files)
    assert r.status_code == 200 and 'role="status"' in r.text
    assert await count(db, OrgUnit) == 8
    r = await hr.post("/admin/import/units", data={"_csrf_token": token}, files=files)
    assert r.status_code == 200 and "取り込みました" in r.text
    assert await count(db, OrgUnit) == 9
    bad = {"file": ("u.csv", (UNITS_JA + "PG2,,,課,NOPE,\r\n").encode(), "text/csv")}
    r = await hr.post("/admin/import/units", data={"_csrf_token": token}, files=bad)
    assert r.status_code == 422
    assert 'role="alert"' in r.text and '<th scope="row">2</th>' in r.text
    assert await count(db, OrgUnit) == 9


def test_csv_catalogs_have_the_same_keys():
    folder = Path(org_csv.__file__).parent / "locales"
    ja, en = (json.loads((folder / f"csv.{lang}.json").read_text(encoding="utf-8")) for lang in ("ja", "en"))
    assert set(ja) == set(en)
