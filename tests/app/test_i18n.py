"""Every message exists in both languages, and the language follows the person."""

from __future__ import annotations

from app.i18n import catalog, catalog_files, negotiate, translate


def test_catalogs_have_the_same_keys_in_both_languages():
    assert catalog_files("ja") and len(catalog_files("ja")) == len(catalog_files("en"))
    ja, en = catalog("ja"), catalog("en")
    assert set(ja) - set(en) == set(), "keys missing in English"
    assert set(en) - set(ja) == set(), "keys missing in Japanese"
    assert all(v.strip() for v in [*ja.values(), *en.values()])


def test_negotiate_honours_q_values():
    assert negotiate("en-US,en;q=0.9,ja;q=0.8", "ja") == "en"
    assert negotiate("fr, ja;q=0.5", "en") == "ja"
    assert negotiate("de", "ja") == "ja"
    assert negotiate(None, "en") == "en"


def test_translate_formats_and_falls_back():
    assert translate("en", "units.members", n=3) == "3 people"
    assert translate("xx", "nav.home") == "ホーム"
    assert translate("ja", "no.such.key") == "no.such.key"


async def test_accept_language_picks_english_for_signed_out_pages(anon):
    r = await anon.get("/login", headers={"accept-language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in r.text
    r = await anon.get("/api/me", headers={"accept-language": "en"})
    assert r.json()["detail"] == "Please sign in."


async def test_person_locale_wins_and_switch_persists(make_client):
    client = await make_client("employee")
    r = await client.get("/", headers={"accept-language": "en"})
    assert '<html lang="ja">' in r.text
    r = await client.patch("/api/me", json={"locale": "en"})
    assert r.status_code == 200 and r.json()["locale"] == "en"
    r = await client.get("/")
    assert '<html lang="en">' in r.text
    r = await client.post(
        "/lang", data={"lang": "ja", "next": "/", "_csrf_token": client.headers["x-csrftoken"]}
    )
    assert r.status_code == 303
    assert '<html lang="ja">' in (await client.get("/")).text
