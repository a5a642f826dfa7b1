"""Grants shared between GoogleClients (pure).

Google keeps one grant per (OAuth client, Google account): revoking any refresh token of it
ends every token of it, and it keeps at most 100 refresh tokens of it (the 101st consent
silently ends the oldest). Two GoogleClients consented with the same OAuth client by the same
account therefore share one grant. These functions decide, over the grants the operator keeps
(read from its own private Secrets only), whether a revoke would end another GoogleClient's
grant, and how many GoogleClients share each pair.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping

from .naming import Key
from .tokens import TokenRecord

# Google's limit of refresh tokens per (OAuth client, account); GrantLimitNear is posted on
# every GoogleClient of a pair shared by more than GRANT_LIMIT_NEAR (half of it: room to act).
GOOGLE_TOKEN_LIMIT = 100
GRANT_LIMIT_NEAR = 50

# The Events about it.
REVOKE_SKIPPED = "RevokeSkipped"
GRANT_LIMIT_NEAR_EVENT = "GrantLimitNear"


@dataclasses.dataclass(frozen=True)
class GrantPair:
    """The (OAuth client id, account e-mail) a grant belongs to; either may be unknown ("")
    in a private Secret written by hand or by an older version (a refresh fills both in)."""

    client_id: str
    account: str

    @classmethod
    def of(cls, record: TokenRecord) -> GrantPair:
        # Google's e-mails are case-insensitive: one account, one pair.
        return cls(record.client_id.strip(), record.account_email.strip().lower())

    def may_be(self, other: GrantPair) -> bool:
        """Could both be the same pair? An unknown part could be anything: assumed equal, so
        a grant of unknown account is never the reason another one dies."""
        return _may_equal(self.client_id, other.client_id) and _may_equal(
            self.account, other.account
        )


def _may_equal(one: str, other: str) -> bool:
    return not one or not other or one == other


@dataclasses.dataclass(frozen=True)
class KeptGrant:
    """A refresh token the operator keeps for the GoogleClient `holder`."""

    holder: Key
    pair: GrantPair


def kept_grant(holder: Key, record: TokenRecord | None) -> KeptGrant | None:
    """The grant `holder`'s private Secret keeps; None when it keeps no refresh token."""
    if record is None or not record.refresh_token:
        return None
    return KeptGrant(holder, GrantPair.of(record))


@dataclasses.dataclass(frozen=True)
class RevokeVerdict:
    """Whether a revoke of `holder`'s grant may go to Google; when not, why (`message`, for
    an Event and the `revoke` command: it names only GoogleClients of `holder`'s namespace)."""

    revoke: bool
    message: str = ""


def revoke_verdict(
    holder: Key,
    pair: GrantPair,
    kept: Iterable[KeptGrant],
    what: str = "the grant",
    *,
    kept_by_holder: bool = True,
) -> RevokeVerdict:
    """May the operator revoke a grant of `pair` for the GoogleClient `holder`? Not while
    another GoogleClient keeps a grant that may be of the same pair: the revoke would end it
    too. `kept_by_holder`: the token revoked is the one `holder` keeps (a deletion, a revoke
    request); else it is one `holder` does not keep (a refused or replaced consent), and
    `holder`'s own kept grant counts as well."""
    sharing = sorted(
        {
            grant.holder
            for grant in kept
            if not (kept_by_holder and grant.holder == holder) and grant.pair.may_be(pair)
        }
    )
    if not sharing:
        return RevokeVerdict(True)
    here = [name for namespace, name in sharing if namespace == holder[0]]
    elsewhere = len(sharing) - len(here)
    named = [
        "this GoogleClient" if name == holder[1] else f"GoogleClient {name!r}" for name in here
    ]
    if elsewhere:
        named.append(
            "1 GoogleClient in another namespace"
            if elsewhere == 1
            else f"{elsewhere} GoogleClients in other namespaces"
        )
    verb = "keeps" if len(sharing) == 1 else "keep"
    return RevokeVerdict(
        False,
        f"Did not revoke {what} at Google: {_joined(named)} {verb} a grant of the same OAuth "
        "client and Google account, and Google keeps one grant per pair (a revoke would end "
        "theirs too). To end the access for all of them, remove the app at "
        "https://myaccount.google.com/permissions",
    )


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def holders_by_pair(kept: Iterable[KeptGrant]) -> dict[GrantPair, set[Key]]:
    """The GoogleClients keeping a grant of each fully known pair (an unknown client id or
    account is not counted: it would merge unrelated pairs)."""
    holders: dict[GrantPair, set[Key]] = collections.defaultdict(set)
    for grant in kept:
        if grant.pair.client_id and grant.pair.account:
            holders[grant.pair].add(grant.holder)
    return dict(holders)


def largest_sharing(holders: Mapping[GrantPair, set[Key]]) -> int:
    """The largest number of GoogleClients sharing one pair (0 when none keeps a grant)."""
    return max((len(keys) for keys in holders.values()), default=0)


def near_limit(holders: Mapping[GrantPair, set[Key]]) -> dict[Key, int]:
    """Each GoogleClient of a pair shared by more than GRANT_LIMIT_NEAR, with how many share it."""
    return {
        key: len(keys) for keys in holders.values() if len(keys) > GRANT_LIMIT_NEAR for key in keys
    }


def grant_limit_message(sharing: int) -> str:
    return (
        f"{sharing} GoogleClients keep a grant of this GoogleClient's OAuth client and Google "
        f"account; Google keeps at most {GOOGLE_TOKEN_LIMIT} refresh tokens per pair and the "
        "next consent beyond that silently ends the oldest. Use one OAuth client per customer "
        "(or per group of GoogleClients), or re-consent less often"
    )
