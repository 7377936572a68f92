"""A demo organisation for the embedded profile: one 局, two 部, four 課, a 係, thirty people, every role."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from auth.models import OrgUnit, RoleAssignment, User
from auth.passwords import Passwords

DEMO_PASSWORD = "telework-demo-2026"

UNITS = [
    # code, name, name_en, level, parent code
    ("SOMU", "総務局", "General Affairs Bureau", "kyoku", None),
    ("SOMU-SOMU", "総務部", "General Affairs Department", "bu", "SOMU"),
    ("SOMU-GYOSEI", "行政管理部", "Administrative Management Department", "bu", "SOMU"),
    ("JINJI", "人事課", "Personnel Division", "ka", "SOMU-SOMU"),
    ("JOHO", "情報政策課", "Information Policy Division", "ka", "SOMU-SOMU"),
    ("GYOKAKU", "行政改革課", "Administrative Reform Division", "ka", "SOMU-GYOSEI"),
    ("KEIYAKU", "契約監理課", "Contract Management Division", "ka", "SOMU-GYOSEI"),
    ("JOHO-NW", "ネットワーク係", "Network Section", "kakari", "JOHO"),
]

# employee number, name, kana, romaji for email, unit, employment type, extra roles (unit_head takes its unit)
PEOPLE = [
    ("100001", "山田 太郎", "やまだ たろう", "taro.yamada", "SOMU", "regular", ["unit_head"]),
    ("100002", "佐藤 花子", "さとう はなこ", "hanako.sato", "SOMU-SOMU", "regular", ["unit_head"]),
    ("100003", "鈴木 一郎", "すずき いちろう", "ichiro.suzuki", "SOMU-GYOSEI", "regular", ["unit_head"]),
    (
        "100004",
        "高橋 美咲",
        "たかはし みさき",
        "misaki.takahashi",
        "JINJI",
        "regular",
        ["unit_head", "hr_admin"],
    ),
    ("100005", "田中 健太", "たなか けんた", "kenta.tanaka", "JOHO", "regular", ["unit_head", "it_admin"]),
    ("100006", "伊藤 直子", "いとう なおこ", "naoko.ito", "GYOKAKU", "regular", ["unit_head"]),
    ("100007", "渡辺 大輔", "わたなべ だいすけ", "daisuke.watanabe", "KEIYAKU", "regular", ["unit_head"]),
    ("100008", "中村 由美", "なかむら ゆみ", "yumi.nakamura", "JINJI", "regular", ["hr_admin"]),
    ("100009", "小林 翔太", "こばやし しょうた", "shota.kobayashi", "JOHO", "regular", ["it_admin"]),
    ("100010", "加藤 恵", "かとう めぐみ", "megumi.kato", "KEIYAKU", "regular", ["auditor"]),
    ("100011", "吉田 拓也", "よしだ たくや", "takuya.yoshida", "JOHO", "regular", ["sysadmin"]),
    ("100012", "山本 さくら", "やまもと さくら", "sakura.yamamoto", "JINJI", "regular", []),
    ("100013", "松本 亮", "まつもと りょう", "ryo.matsumoto", "JINJI", "fixed_term", []),
    ("100014", "井上 彩", "いのうえ あや", "aya.inoue", "JINJI", "part_time", []),
    ("100015", "木村 誠", "きむら まこと", "makoto.kimura", "JOHO", "regular", []),
    ("100016", "林 愛", "はやし あい", "ai.hayashi", "JOHO-NW", "regular", ["unit_head"]),
    ("100017", "斎藤 修", "さいとう おさむ", "osamu.saito", "JOHO-NW", "reappointed", []),
    ("100018", "清水 真由美", "しみず まゆみ", "mayumi.shimizu", "JOHO-NW", "regular", []),
    ("100019", "山口 翼", "やまぐち つばさ", "tsubasa.yamaguchi", "GYOKAKU", "regular", []),
    ("100020", "森 千尋", "もり ちひろ", "chihiro.mori", "GYOKAKU", "fixed_term", []),
    ("100021", "池田 浩二", "いけだ こうじ", "koji.ikeda", "GYOKAKU", "regular", []),
    ("100022", "橋本 香織", "はしもと かおり", "kaori.hashimoto", "GYOKAKU", "part_time", []),
    ("100023", "阿部 大樹", "あべ だいき", "daiki.abe", "KEIYAKU", "regular", []),
    ("100024", "石川 優子", "いしかわ ゆうこ", "yuko.ishikawa", "KEIYAKU", "regular", []),
    ("100025", "前田 隆", "まえだ たかし", "takashi.maeda", "KEIYAKU", "reappointed", []),
    ("100026", "藤田 明美", "ふじた あけみ", "akemi.fujita", "SOMU-SOMU", "regular", []),
    ("100027", "小川 悠斗", "おがわ ゆうと", "yuto.ogawa", "SOMU-SOMU", "fixed_term", []),
    ("100028", "岡田 玲奈", "おかだ れな", "rena.okada", "SOMU-GYOSEI", "regular", []),
    ("100029", "後藤 陽介", "ごとう ようすけ", "yosuke.goto", "SOMU", "regular", []),
    ("100030", "長谷川 舞", "はせがわ まい", "mai.hasegawa", "JOHO", "fixed_term", []),
]

ADMIN = ("admin", "システム管理者（緊急用）", "しすてむかんりしゃ", "admin")


async def seed_if_empty(db: AsyncSession, passwords: Passwords) -> bool:
    """Create the demo organisation unless the database already has people; True when it seeded."""
    if (await db.execute(select(func.count()).select_from(User))).scalar_one():
        return False
    await seed(db, passwords)
    await db.commit()
    return True


async def seed(db: AsyncSession, passwords: Passwords) -> dict[str, User]:
    codes: dict[str, OrgUnit] = {}
    for code, name, name_en, level, parent in UNITS:
        unit = OrgUnit(
            code=code, name=name, name_en=name_en, level=level, parent_id=codes[parent].id if parent else None
        )
        db.add(unit)
        await db.flush()
        codes[code] = unit
    # One hash for the shared, published demo password keeps seeding fast; real accounts get their own.
    demo_hash = passwords.hash(DEMO_PASSWORD)
    users: dict[str, User] = {}
    for number, name, kana, romaji, unit_code, employment, roles in PEOPLE:
        user = User(
            employee_number=number,
            name=name,
            kana=kana,
            email=f"{romaji}@example.lg.jp",
            employment_type=employment,
            unit_id=codes[unit_code].id,
            password_hash=demo_hash,
        )
        db.add(user)
        await db.flush()
        users[number] = user
        db.add(RoleAssignment(user_id=user.id or 0, role="employee"))
        for role in roles:
            unit_id = codes[unit_code].id if role == "unit_head" else None
            db.add(RoleAssignment(user_id=user.id or 0, role=role, unit_id=unit_id))
    number, name, kana, romaji = ADMIN
    admin = User(
        employee_number=number, name=name, kana=kana, email=f"{romaji}@example.lg.jp", password_hash=demo_hash
    )
    db.add(admin)
    await db.flush()
    users[number] = admin
    db.add(RoleAssignment(user_id=admin.id or 0, role="sysadmin"))
    audit.record(
        db, "system.seed_demo", actor_label="system", entity_type="system", after={"users": len(users)}
    )
    await db.flush()
    return users


def demo_sign_ins() -> list[tuple[str, str, str]]:
    """(login, name, roles) for the README and the start-up banner."""
    wanted = {
        "employee": "100012",
        "unit_head": "100006",
        "hr_admin": "100008",
        "it_admin": "100009",
        "auditor": "100010",
        "sysadmin": "100011",
    }
    by_number = {p[0]: p for p in PEOPLE}
    rows = [(number, by_number[number][1], role) for role, number in wanted.items()]
    rows.append((ADMIN[0], ADMIN[1], "sysadmin (break-glass)"))
    return rows
