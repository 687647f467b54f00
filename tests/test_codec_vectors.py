"""Byte-for-byte vectors of what is encoded, hashed and signed.

The expected values were produced by the codec as it was before the decoding
fast paths (commit f0a1554): any change to the codec or the ledger types that
moves one byte of a transaction, a block, a vote or a state value fails here.
"""

from cloudchain import codec
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import (
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    Transaction,
    txs_hash,
    vote_sign_bytes,
)

CHAIN = "cloudchain-vectors"
ALICE = PrivateKey(bytes(range(32)))
BOB = PrivateKey(bytes(range(32, 64)))

TX_BYTES = bytes.fromhex(
    "88a46172677382a6616d6f756e74ce000f4240a2746fd92832346636656436616362666531303039633033"
    "306437636135363763333363613438333039313134a8636861696e5f6964b2636c6f7564636861696e2d76"
    "6563746f7273a3666565cd076ca66d6574686f64a87472616e73666572a66d6f64756c65a5746f6b656ea5"
    "6e6f6e636507a673656e646572c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664"
    "125531b8a97369676e6174757265c44063dd00f3532ee15da4416d52fe56604f411d32c67647c11fbe3835"
    "ee1cea1ddcc7bd76cbf54dd6f728bed6325470d85d2a3925d254733fd40031872dc766d904"
)
TX_HASH = "8271818a86aa2330103ee0ac6764d1b9d095ba6a3e6b22e11306c6edf15342ec"
TX_SIGN_BYTES_SHA = "6aeb11953ad9bbdd3da37387d4111accec7c0a9a683b6865c239a5d713f71e42"
BLOCK_BYTES_SHA = "cd1613d743c54ce50e2d2c93235026159e52175101eef7f4b1211c5d8865eec5"
BLOCK_HASH = "7f5bb647c3af99bec1415c81cbd65f0f0306e19b88e006a7cba935856da4e396"
VOTE_SIGN_SHA = "f86c1423c2c15b6c7db672eddac82540f3d707cb192c20ac5d7676436e1b0de7"
# Every integer width at its edges, str and bin of each length class, nesting, key order.
MIXED_VALUE = {
    "z": [
        *(1, -1, -33, -129, -40000, -(2**31) - 1, -(2**63), 127, 128, 255, 256, 65535, 65536),
        *(2**32 - 1, 2**32, 2**64 - 1),
    ],
    "a": {"é": "x" * 31, "b": "y" * 32, "": b""},
    "m": None,
    "t": True,
    "f": False,
    "big": "q" * 256,
    "bin": b"\x01" * 256,
    "arr": list(range(16)),
}
MIXED_SHA = "bdd29c5849b0d24cd67ff4425766272202a5d07ce3bda789831b70b2053b34fa"


def _transfer() -> Transaction:
    args = {"to": BOB.address, "amount": 1_000_000}
    return Transaction.create(ALICE, CHAIN, 7, "token", "transfer", args, fee=1_900)


def _block() -> Block:
    args = {"class": "gpu", "deadline": 2**40, "neg": -40000, "tags": ["a", "é"]}
    txs = tuple(
        Transaction.create(
            ALICE, CHAIN, n, "market", "submit", {**args, "blob": bytes(300)}, fee=n * 1000
        )
        for n in range(3)
    )
    header = BlockHeader(
        CHAIN,
        9,
        1_700_000_000_000_000_000,
        b"\x01" * 32,
        b"\x02" * 32,
        txs_hash(txs),
        b"\x03" * 32,
        b"\x04" * 32,
        b"\x05" * 32,
        bytes.fromhex(ALICE.address),
    )
    sig = CommitSig(bytes.fromhex(BOB.address), 1_699_999_999_000_000_000, BOB.sign(b"x"))
    return Block(header, txs, Commit(8, 1, b"\x01" * 32, (sig,)))


def test_a_created_transaction_has_the_recorded_bytes_hash_and_sign_bytes():
    tx = _transfer()
    assert tx.to_bytes() == TX_BYTES
    assert tx.hash.hex() == TX_HASH
    assert codec.sha256(tx.sign_bytes()).hex() == TX_SIGN_BYTES_SHA


def test_a_decoded_transaction_has_the_recorded_bytes_hash_and_sign_bytes():
    tx = Transaction.from_bytes(TX_BYTES)
    assert tx == _transfer()
    assert tx.to_bytes() == TX_BYTES
    assert tx.hash.hex() == TX_HASH
    assert codec.sha256(tx.sign_bytes()).hex() == TX_SIGN_BYTES_SHA
    assert tx.verify_signature()


def test_a_block_has_the_recorded_bytes_and_hash_built_and_decoded():
    block = _block()
    data = block.to_bytes()
    assert codec.sha256(data).hex() == BLOCK_BYTES_SHA
    assert block.hash.hex() == BLOCK_HASH
    decoded = Block.from_bytes(data)
    assert decoded == block
    assert decoded.to_bytes() == data and decoded.hash.hex() == BLOCK_HASH
    for built, again in zip(block.txs, decoded.txs, strict=True):
        assert again.to_bytes() == built.to_bytes() and again.hash == built.hash
        assert again.sign_bytes() == built.sign_bytes() and again.verify_signature()


def test_vote_sign_bytes_are_the_recorded_ones():
    sign_bytes = vote_sign_bytes(CHAIN, "prevote", 9, 0, bytes.fromhex(BLOCK_HASH), 5)
    assert codec.sha256(sign_bytes).hex() == VOTE_SIGN_SHA


def test_every_integer_width_and_length_class_encodes_as_recorded():
    data = codec.encode(MIXED_VALUE)
    assert codec.sha256(data).hex() == MIXED_SHA
    assert codec.encode(codec.decode(data)) == data
