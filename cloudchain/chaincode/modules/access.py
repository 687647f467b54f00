"""The access module: sealed datasets, the grants that open them, and who opened them.

A data owner seals a dataset (cloudchain/privacy/sealed.py) under a data key of its
own and records it here: the ciphertext's CID and size, δ and the total ε budget of its
privacy accounting (integers: δ in parts per 10^12, ε in micro-ε). The chain never sees
the data key. To let a provider read the dataset, the owner wraps the data key to the
provider's published X25519 key with HPKE (privacy/wrapping.py, bound to the grant) and
records the grant: for one task, or until a height. Before it decrypts, the grantee
records the opening (`open`), which the chain allows only under a grant valid now; that
record, and an event the WebSocket can follow, are the audit trail.

Revoking: `revoke` of one grantee ends its grant at once; `revoke` of the whole dataset
(grantee "") ends every grant and refuses every new grant and opening. What a provider
decrypted before cannot be made forgotten: revocation stops what comes next, and
`rotate` (a new ciphertext under a new data key, every grant of the old key void)
protects the data from here on against anyone who kept the old key and not the data.

State:
    access/key/<address>                  the account's X25519 public key (32 bytes)
    access/next                           the next dataset id
    access/dataset/<id:016x>              Dataset
    access/grant/<id:016x>/<grantee>      Grant
    access/grantee/<grantee>/<id:016x>    true: the same grant, by grantee
    access/audit/<id:016x>/<seq:016x>     Opening

The privacy budget (the market's side, market/tasks.py and market/assignment.py): a
task that reads a sealed dataset names it, and a DP task declares the ε it spends.
`check_task_use` refuses at submit a task the dataset cannot take (an ε past what is
left, a task without DP on a dataset with a budget); `debit` spends the declared ε when
the task is assigned, and only to a provider `grant_opens` lets read it. ε once debited
stays spent, whatever becomes of the task: the chain cannot know what was learned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import BlockContext, Context, StateReader, read_value
from cloudchain.chaincode.module import (
    ArgError,
    Module,
    QueryError,
    TxError,
    address_arg,
    int_arg,
    optional_address_arg,
    query_filters,
)
from cloudchain.chaincode.modules.storage import cid_arg
from cloudchain.crypto import is_address
from cloudchain.privacy.units import DELTA_SCALE

ACCESS = Module("access")

KEY = b"access/key/"
NEXT = b"access/next"
DATASET = b"access/dataset/"
GRANT = b"access/grant/"
GRANTEE = b"access/grantee/"
AUDIT = b"access/audit/"

PUBLIC_KEY_BYTES = 32
WRAPPED_BYTES = 80  # HPKE enc (32) + the sealed 32-byte data key + its tag (16)
MAX_SIZE = 2**50
MAX_MICRO_EPS = 10**12  # ε up to 10^6: far above any meaningful budget
MAX_LISTED = 100
ACTIVE, REVOKED = "active", "revoked"

size_arg = int_arg(1, MAX_SIZE)
dataset_arg = int_arg(1, 2**63 - 1)
micro_eps_arg = int_arg(0, MAX_MICRO_EPS)
delta_arg = int_arg(1, DELTA_SCALE - 1)


def _bytes_arg(length: int) -> Any:
    def check(value: Any) -> bytes:
        if not isinstance(value, bytes) or len(value) != length:
            raise ArgError(f"expected {length} bytes")
        return value

    return check


@dataclass(frozen=True)
class Dataset:
    owner: str
    cid: str  # the ciphertext, as the blob store names it
    size: int
    delta_e12: int  # δ, in parts per 10^12
    budget_micro_eps: int  # the total ε its DP tasks may spend, in micro-ε
    spent_micro_eps: int
    key_version: int  # 1, and one more at each rotation
    status: str  # active or revoked
    created_at: int  # height
    openings: int = 0  # recorded in the audit trail so far

    @property
    def remaining_micro_eps(self) -> int:
        return self.budget_micro_eps - self.spent_micro_eps


@dataclass(frozen=True)
class Grant:
    dataset: int
    grantee: str
    task: int  # the task it is for, or 0
    until: int  # the last height it holds, or 0 (then `task` says)
    wrapped_key: bytes
    key_version: int  # of the data key it wraps
    at: int  # height

    def scope(self) -> str:
        """What the wrapped key is bound to (privacy.wrapping.GrantContext.scope)."""
        return f"task:{self.task}" if self.task else f"until:{self.until}"

    def valid(self, dataset: Dataset, height: int, task: int) -> str | None:
        """Why this grant does not open `dataset` for `task` at `height` (None: it does)."""
        if dataset.status != ACTIVE:
            return "the dataset is revoked"
        if self.key_version != dataset.key_version:
            return "the grant wraps a key the dataset was rotated away from"
        if self.task and self.task != task:
            return f"the grant is for task {self.task}, not task {task}"
        if self.until and height > self.until:
            return f"the grant ended at height {self.until}"
        return None


@dataclass(frozen=True)
class Opening:
    dataset: int
    grantee: str
    task: int
    key_version: int
    height: int


def _id(dataset: int) -> bytes:
    return f"{dataset:016x}".encode()


def get_dataset(state: StateReader, dataset: int) -> Dataset | None:
    raw = read_value(state, DATASET + _id(dataset))
    return None if raw is None else Dataset(**codec.thaw(raw))


def get_grant(state: StateReader, dataset: int, grantee: str) -> Grant | None:
    raw = read_value(state, GRANT + _id(dataset) + b"/" + grantee.encode())
    return None if raw is None else Grant(**codec.thaw(raw))


def _put_dataset(ctx: Context, dataset: int, record: Dataset) -> None:
    ctx.kv.set_value(DATASET + _id(dataset), asdict(record))


def _owned(ctx: Context, dataset: int) -> Dataset:
    record = get_dataset(ctx.kv, dataset)
    # Verify that the dataset exists and the sender owns it.
    if record is None:
        raise TxError(Code.NOT_FOUND, f"no dataset {dataset}")
    if record.owner != ctx.sender:
        raise TxError(Code.UNAUTHORIZED, f"only dataset {dataset}'s owner may do that")
    return record


def _grants_of(state: StateReader, dataset: int) -> Iterator[Grant]:
    for _, raw in state.iterate(GRANT + _id(dataset) + b"/"):
        yield Grant(**codec.thaw(codec.decode(raw)))


def _drop_grant(ctx: Context, grant: Grant) -> None:
    ctx.kv.delete(GRANT + _id(grant.dataset) + b"/" + grant.grantee.encode())
    ctx.kv.delete(GRANTEE + grant.grantee.encode() + b"/" + _id(grant.dataset))


def grant_opens(state: StateReader, dataset: int, grantee: str, task: int, height: int) -> bool:
    """Whether `grantee` holds a grant that opens `dataset` for `task` at `height`."""
    record = get_dataset(state, dataset)
    grant = get_grant(state, dataset, grantee)
    return record is not None and grant is not None and grant.valid(record, height, task) is None


def check_task_use(
    state: StateReader, dataset: int, micro_eps: int, inputs: tuple[str, ...]
) -> None:
    """Refuse (TxError) a task reading `dataset` (0: none) that declares `micro_eps`
    (0: not a DP task) if the dataset cannot take it now."""
    if not dataset:
        # Verify that an ε is declared against the dataset it is spent from.
        if micro_eps:
            raise TxError(Code.OUT_OF_RANGE, "a task declares its ε against a dataset: name it")
        return
    record = get_dataset(state, dataset)
    # Verify that the dataset exists, takes tasks, and is what the task reads.
    if record is None:
        raise TxError(Code.NOT_FOUND, f"no dataset {dataset}")
    if record.status != ACTIVE:
        raise TxError(Code.INVALID_STATE, f"dataset {dataset} is revoked: no new tasks")
    if record.cid not in inputs:
        raise TxError(
            Code.OUT_OF_RANGE,
            f"dataset {dataset}'s ciphertext {record.cid} is not among the task's inputs",
        )
    # Verify that a budgeted dataset takes only DP tasks, within what is left.
    if record.budget_micro_eps and not micro_eps:
        raise TxError(
            Code.UNAUTHORIZED,
            f"dataset {dataset} has a privacy budget: only a DP task that declares its ε "
            "may read it",
        )
    if record.budget_micro_eps and micro_eps > record.remaining_micro_eps:
        raise TxError(
            Code.LIMIT_EXCEEDED,
            f"the task's ε {micro_eps} micro-ε exceeds what is left of dataset {dataset}'s "
            f"budget: {record.remaining_micro_eps} of {record.budget_micro_eps} micro-ε",
        )


def debit(ctx: BlockContext, dataset: int, micro_eps: int, task: int) -> bool:
    """Spend `micro_eps` of the dataset's budget for `task`; False (nothing spent) if
    what is left does not cover it. A dataset without a budget counts what its tasks
    declare, with no limit."""
    record = get_dataset(ctx.kv, dataset)
    assert record is not None
    if record.budget_micro_eps and micro_eps > record.remaining_micro_eps:
        return False
    spent = replace(record, spent_micro_eps=record.spent_micro_eps + micro_eps)
    ctx.kv.set_value(DATASET + _id(dataset), asdict(spent))
    ctx.emit(
        "access_spend",
        dataset=dataset,
        task=task,
        spent=micro_eps,
        remaining=spent.remaining_micro_eps,
    )
    return True


# --- transactions ---------------------------------------------------------------------------


@ACCESS.tx("publish_key", key=_bytes_arg(PUBLIC_KEY_BYTES))
def process_publish_key(ctx: Context, key: bytes) -> None:
    """The sender's X25519 public key, that owners wrap data keys to (set again to move
    it: grants already made keep the key they were wrapped to)."""
    ctx.kv.set_value(KEY + ctx.sender.encode(), key)
    ctx.emit("access_key", account=ctx.sender, key=key.hex())


@ACCESS.tx(
    "add_dataset", cid=cid_arg, size=size_arg, delta_e12=delta_arg, budget_micro_eps=micro_eps_arg
)
def process_add_dataset(
    ctx: Context, cid: str, size: int, delta_e12: int, budget_micro_eps: int
) -> None:
    dataset = int(read_value(ctx.kv, NEXT, 1))
    ctx.kv.set_value(NEXT, dataset + 1)
    record = Dataset(ctx.sender, cid, size, delta_e12, budget_micro_eps, 0, 1, ACTIVE, ctx.height)
    _put_dataset(ctx, dataset, record)
    ctx.emit("access_dataset", dataset=dataset, owner=ctx.sender, cid=cid, budget=budget_micro_eps)


@ACCESS.tx(
    "grant",
    dataset=dataset_arg,
    grantee=address_arg,
    task=int_arg(0, 2**63 - 1),
    until=int_arg(0, 2**63 - 1),
    wrapped_key=_bytes_arg(WRAPPED_BYTES),
)
def process_grant(
    ctx: Context, dataset: int, grantee: str, task: int, until: int, wrapped_key: bytes
) -> None:
    record = _owned(ctx, dataset)
    # Verify that the dataset takes grants, and the grant names one scope that holds.
    if record.status != ACTIVE:
        raise TxError(Code.INVALID_STATE, f"dataset {dataset} is revoked: no new grants")
    if (task == 0) == (until == 0):
        raise TxError(Code.OUT_OF_RANGE, "a grant is for a task or until a height: one of them")
    if until and until <= ctx.height:
        raise TxError(Code.OUT_OF_RANGE, f"until {until} is not after this height {ctx.height}")
    # Verify that the grantee has a key to wrap to.
    if read_value(ctx.kv, KEY + grantee.encode()) is None:
        raise TxError(Code.NOT_FOUND, f"{grantee} has published no encryption key")
    grant = Grant(dataset, grantee, task, until, wrapped_key, record.key_version, ctx.height)
    ctx.kv.set_value(GRANT + _id(dataset) + b"/" + grantee.encode(), asdict(grant))
    ctx.kv.set_value(GRANTEE + grantee.encode() + b"/" + _id(dataset), True)
    ctx.emit("access_grant", dataset=dataset, grantee=grantee, scope=grant.scope())


@ACCESS.tx("revoke", dataset=dataset_arg, grantee=optional_address_arg)
def process_revoke(ctx: Context, dataset: int, grantee: str) -> None:
    """End one grantee's grant, or with grantee "" the whole dataset: every grant, and
    no new grant or opening."""
    record = _owned(ctx, dataset)
    if grantee:
        grant = get_grant(ctx.kv, dataset, grantee)
        if grant is None:
            raise TxError(Code.NOT_FOUND, f"{grantee} has no grant on dataset {dataset}")
        _drop_grant(ctx, grant)
    else:
        for grant in list(_grants_of(ctx.kv, dataset)):
            _drop_grant(ctx, grant)
        _put_dataset(ctx, dataset, replace(record, status=REVOKED))
    ctx.emit("access_revoke", dataset=dataset, grantee=grantee or "*")


@ACCESS.tx("rotate", dataset=dataset_arg, cid=cid_arg, size=size_arg)
def process_rotate(ctx: Context, dataset: int, cid: str, size: int) -> None:
    """A new ciphertext under a new data key: every grant of the old key is void."""
    record = _owned(ctx, dataset)
    if record.status != ACTIVE:
        raise TxError(Code.INVALID_STATE, f"dataset {dataset} is revoked")
    for grant in list(_grants_of(ctx.kv, dataset)):
        _drop_grant(ctx, grant)
    rotated = replace(record, cid=cid, size=size, key_version=record.key_version + 1)
    _put_dataset(ctx, dataset, rotated)
    ctx.emit("access_rotate", dataset=dataset, cid=cid, key_version=rotated.key_version)


@ACCESS.tx("open", dataset=dataset_arg, task=int_arg(0, 2**63 - 1))
def process_open(ctx: Context, dataset: int, task: int) -> None:
    """The grantee says it decrypts the dataset now, for `task`: allowed only under a
    grant that holds, and recorded."""
    record = get_dataset(ctx.kv, dataset)
    if record is None:
        raise TxError(Code.NOT_FOUND, f"no dataset {dataset}")
    grant = get_grant(ctx.kv, dataset, ctx.sender)
    # Verify that a grant opens the dataset for this task now.
    if grant is None:
        raise TxError(Code.UNAUTHORIZED, f"{ctx.sender} has no grant on dataset {dataset}")
    why = grant.valid(record, ctx.height, task)
    if why is not None:
        raise TxError(Code.UNAUTHORIZED, f"dataset {dataset} does not open: {why}")
    opening = Opening(dataset, ctx.sender, task, record.key_version, ctx.height)
    key = AUDIT + _id(dataset) + b"/" + f"{record.openings:016x}".encode()
    ctx.kv.set_value(key, asdict(opening))
    _put_dataset(ctx, dataset, replace(record, openings=record.openings + 1))
    ctx.emit("access_open", dataset=dataset, grantee=ctx.sender, task=task)


# --- queries ---------------------------------------------------------------------------------


def _dataset_query(text: str, what: str = "dataset") -> int:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 2**63):
        raise QueryError(Code.INVALID_QUERY, f"{text[:20]!r} is not a {what} id")
    return int(text)


@ACCESS.query("dataset")
def query_dataset(state: StateReader, data: bytes) -> dict[str, Any]:
    """ID -> the dataset, with what is left of its budget."""
    dataset = _dataset_query(data.decode("ascii", "replace"))
    record = get_dataset(state, dataset)
    if record is None:
        raise QueryError(Code.NOT_FOUND, f"no dataset {dataset}")
    return {"id": dataset, **asdict(record), "remaining_micro_eps": record.remaining_micro_eps}


@ACCESS.query("key")
def query_key(state: StateReader, data: bytes) -> dict[str, Any]:
    address = data.decode("ascii", "replace")
    key = read_value(state, KEY + address.encode()) if is_address(address) else None
    if key is None:
        raise QueryError(Code.NOT_FOUND, f"{address[:48]!r} has published no encryption key")
    return {"address": address, "key": key}


@ACCESS.query("grants")
def query_grants(state: StateReader, data: bytes) -> dict[str, Any]:
    """dataset=ID or grantee=ADDRESS -> {grants: [...]} (at most MAX_LISTED)."""
    filters = query_filters(data, ("dataset", "grantee"))
    if ("dataset" in filters) == ("grantee" in filters):
        raise QueryError(Code.INVALID_QUERY, "give dataset=ID or grantee=ADDRESS")
    if "dataset" in filters:
        grants = list(_grants_of(state, _dataset_query(filters["dataset"])))
    else:
        grantee = filters["grantee"]
        if not is_address(grantee):
            raise QueryError(Code.INVALID_QUERY, f"{grantee[:48]!r} is not an address")
        grants = []
        for key, _ in state.iterate(GRANTEE + grantee.encode() + b"/"):
            grant = get_grant(state, int(key.rsplit(b"/", 1)[1], 16), grantee)
            if grant is not None:
                grants.append(grant)
    return {"grants": [asdict(g) for g in grants[:MAX_LISTED]]}


@ACCESS.query("audit")
def query_audit(state: StateReader, data: bytes) -> dict[str, Any]:
    """ID, or dataset=ID&task=N -> {openings: the dataset's recorded openings (of that
    task), oldest first; the last MAX_LISTED of them}."""
    text = data.decode("ascii", "replace")
    if "=" in text:
        filters = query_filters(data, ("dataset", "task"))
        if "dataset" not in filters:
            raise QueryError(Code.INVALID_QUERY, "give dataset=ID (and task=N)")
        dataset = _dataset_query(filters["dataset"])
        task = _dataset_query(filters["task"], "task") if "task" in filters else None
    else:
        dataset, task = _dataset_query(text), None
    openings = [
        codec.thaw(codec.decode(raw)) for _, raw in state.iterate(AUDIT + _id(dataset) + b"/")
    ]
    if task is not None:
        openings = [opening for opening in openings if opening["task"] == task]
    return {"dataset": dataset, "openings": openings[-MAX_LISTED:]}
