"""Command line: `python -m app serve | migrate | seed | create-admin | indicator close YYYY-MM`
and `meetings reply FILE` (an answer to an invitation, saved from the organizer's mailbox)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from app.settings import Settings, SettingsError


def _banner(settings: Settings) -> None:
    from app.demo import DEMO_PASSWORD, demo_sign_ins

    print(f"\nTelework Hub — {settings.base_url}  (APP_ENV={settings.app_env})", flush=True)
    if settings.seed_demo:
        print(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
        for login, name, role in demo_sign_ins():
            print(f"  {login:<8} {name:<22} {role}")
    print(flush=True)


async def _migrate(settings: Settings) -> None:
    from app.db import make_engine, migrate

    engine = make_engine(settings.database_url)
    await migrate(engine)
    await engine.dispose()


async def _seed(settings: Settings) -> None:
    from app.db import make_engine, migrate, session_maker
    from app.demo import seed_if_empty
    from auth.passwords import Passwords

    engine = make_engine(settings.database_url)
    await migrate(engine)
    async with session_maker(engine)() as db:
        done = await seed_if_empty(db, Passwords(settings.argon2_time_cost, settings.argon2_memory_kib))
    await engine.dispose()
    print("seeded the demo organisation" if done else "database already has people; nothing seeded")


async def _create_admin(settings: Settings, login: str, email: str) -> None:
    from sqlalchemy import select
    from sqlmodel import col

    from app import audit
    from app.db import make_engine, migrate, session_maker
    from auth.models import RoleAssignment, User
    from auth.passwords import MIN_LENGTH, Passwords

    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password for the break-glass admin: ")
    if len(password) < MIN_LENGTH:
        sys.exit(f"the password needs at least {MIN_LENGTH} characters")
    engine = make_engine(settings.database_url)
    await migrate(engine)
    async with session_maker(engine)() as db:
        hasher = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        user = (await db.execute(select(User).where(col(User.employee_number) == login))).scalar_one_or_none()
        if user is None:
            user = User(employee_number=login, name="システム管理者", email=email)
            db.add(user)
            await db.flush()
            db.add(RoleAssignment(user_id=user.id or 0, role="sysadmin"))
        user.password_hash = hasher.hash(password)
        user.active = True
        audit.record(db, "user.break_glass_admin", actor_label="cli", entity_type="user", entity_id=user.id)
        await db.commit()
    await engine.dispose()
    print(f"break-glass admin {login!r} is ready")


async def _indicator_close(settings: Settings, month_text: str) -> int:
    """Close a finished month of the indicator (the server's job does it by itself; this is idempotent)."""
    from app.db import make_engine, migrate, session_maker
    from app.errors import DomainError
    from scheduling import indicator
    from scheduling.config import TeleworkConfig

    config = TeleworkConfig.from_env(production=settings.production)
    engine = make_engine(settings.database_url)
    if settings.migrate_on_start:
        await migrate(engine)
    try:
        async with session_maker(engine)() as db:
            month = indicator.parse_month(month_text)
            row = await indicator.close_month(db, config, month, today=config.today(), actor="cli")
            await db.commit()
            if row is None:
                print(f"{month:%Y-%m} was already closed; nothing changed")
            else:
                print(
                    f"{month:%Y-%m} closed: {row.count} instances, {row.staff} staff, rule {row.rule_version}"
                )
            return 0
    except DomainError as exc:
        print(f"cannot close {month_text}: {exc.key} {exc.params}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


async def _meetings_reply(settings: Settings, raw: bytes) -> int:
    """Record an attendee's answer from a METHOD:REPLY saved from the organizer's mailbox (.ics or .eml)."""
    from app.db import make_engine, migrate, session_maker
    from app.errors import DomainError
    from app.i18n import translate
    from scheduling import invitations, itip

    engine = make_engine(settings.database_url)
    if settings.migrate_on_start:
        await migrate(engine)
    try:
        async with session_maker(engine)() as db:
            done = await invitations.apply_reply(db, itip.calendar_from_mail(raw), actor_label="cli")
            await db.commit()
        print(
            f"meeting {done.meeting_id}: {done.email} {done.partstat}"
            + ("" if done.changed else " (unchanged)")
        )
        return 0
    except itip.ItipError as exc:
        print(f"not taken: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"not taken: {translate(settings.default_locale, exc.key, **exc.params)}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description="Telework Hub")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve", help="apply migrations (embedded default), seed the demo org when empty, serve HTTP"
    )
    sub.add_parser("migrate", help="apply database migrations up to the newest")
    sub.add_parser("seed", help="seed the demo organisation into an empty database")
    admin = sub.add_parser(
        "create-admin", help="create or reset the break-glass sysadmin (ADMIN_PASSWORD or prompt)"
    )
    admin.add_argument("--login", default="admin")
    admin.add_argument("--email", default="admin@localhost.localdomain")
    ind = sub.add_parser("indicator", help="the monthly remote-work count")
    ind.add_argument("action", choices=["close"], help="close: record a finished month once")
    ind.add_argument("month", help="YYYY-MM")
    mt = sub.add_parser("meetings", help="scheduled meetings")
    mt.add_argument(
        "action", choices=["reply"], help="reply: record an answer (iTIP METHOD:REPLY) from a file"
    )
    mt.add_argument("file", help="the .ics or the whole saved e-mail (.eml); - reads standard input")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"configuration error: {exc}")
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "seed":
        asyncio.run(_seed(settings))
    elif args.command == "create-admin":
        asyncio.run(_create_admin(settings, args.login, args.email))
    elif args.command == "indicator":
        sys.exit(asyncio.run(_indicator_close(settings, args.month)))
    elif args.command == "meetings":
        try:
            with open(args.file, "rb") if args.file != "-" else sys.stdin.buffer as source:
                raw = source.read()
        except OSError as exc:
            sys.exit(f"cannot read {args.file}: {exc}")
        sys.exit(asyncio.run(_meetings_reply(settings, raw)))
    else:
        import uvicorn

        _banner(settings)
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            proxy_headers=True,
            log_level="info",
        )


if __name__ == "__main__":
    main()
