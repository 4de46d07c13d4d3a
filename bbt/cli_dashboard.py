"""Dashboard commands: revoking and listing API tokens (`bbt token revoke`, `bbt token list`)."""
from __future__ import annotations

import sys
from typing import Any, Optional

import click

from bbt.cli import db_option, open_db
from common.errors import BbtError


def register(main: click.Group) -> None:
    token = main.commands["token"]
    assert isinstance(token, click.Group)

    @token.command("revoke")
    @click.argument("token_value", required=False, metavar="[TOKEN]")
    @click.option("--token-stdin", is_flag=True, help="read the token to revoke from standard input")
    @click.option("--id", "token_id", type=int, default=None, help="revoke the token with this id (bbt token list)")
    @click.option("--user", "name", default=None, help="revoke every token of this user")
    @db_option
    def token_revoke(token_value: Optional[str], token_stdin: bool, token_id: Optional[int], name: Optional[str],
                     db_url: Optional[str]) -> None:
        """Revoke API tokens: one by value or id, or all of a user's."""
        from dashboard import audit
        from dashboard.users import get_user, revoke_token, revoke_token_id, revoke_user_tokens

        if token_stdin:
            token_value = sys.stdin.readline().strip()
        given = [x for x in (token_value, token_id, name) if x]
        if len(given) != 1:
            raise click.UsageError("give exactly one of TOKEN (or --token-stdin), --id or --user")
        db = open_db(db_url)
        if name:
            if get_user(db, name) is None:
                raise BbtError(f"no user {name!r}")
            n = revoke_user_tokens(db, name)
        elif token_id:
            n = int(revoke_token_id(db, token_id))
        else:
            n = int(revoke_token(db, str(token_value)))
        if not n and not name:
            raise BbtError("no such active token")
        audit.record(db, "cli", "token.revoke", None, name, None, token_id=token_id, count=n)
        click.echo(f"revoked {n} token(s)")

    @token.command("list")
    @click.option("--user", "name", default=None, help="only this user's tokens")
    @db_option
    def token_list(name: Optional[str], db_url: Optional[str]) -> None:
        """List API tokens (ids, users, when created / revoked; never the tokens themselves)."""
        import time

        from dashboard.users import list_tokens

        def when(t: Any) -> str:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
        for t in list_tokens(open_db(db_url), name):
            click.echo(f"{t['id']}\t{t['user_name']}\tcreated {when(t['created'])}\t"
                       f"{'revoked ' + when(t['revoked']) if t['revoked'] else 'active'}")
