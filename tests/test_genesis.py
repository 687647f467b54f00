import copy
import json

import pytest

from cloudchain.chaincode.application import Application
from cloudchain.chaincode.modules.token import get_balance, get_supply
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV
from tests.helpers.chain import ACCOUNTS, AUTHORITY, make_genesis


def genesis_obj():
    return json.loads(make_genesis().to_json())


def test_json_round_trip(tmp_path):
    genesis = make_genesis()
    path = tmp_path / "genesis.json"
    genesis.save(path)
    loaded = Genesis.load(path)
    assert loaded == genesis
    assert loaded.hash == genesis.hash
    assert loaded.authority == AUTHORITY.address


def test_integers_as_decimal_strings_are_accepted():
    obj = genesis_obj()
    obj["validators"][0]["power"] = "10"
    obj["app_state"]["accounts"][0]["balance"] = "1000"
    assert Genesis.from_obj(obj) == make_genesis()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g.pop("chain_id"), "genesis: missing field"),
        (lambda g: g.update(surprise=1), "genesis: unknown field"),
        (lambda g: g.update(chain_id="has space"), "genesis.chain_id"),
        (lambda g: g.update(genesis_time="tomorrow"), "genesis.genesis_time"),
        (lambda g: g.update(validators=[]), "genesis.validators: expected a non-empty list"),
        (lambda g: g["validators"][0].update(power=0), r"genesis.validators\[0\].power"),
        (lambda g: g["validators"][0].update(power=True), r"genesis.validators\[0\].power"),
        (lambda g: g["validators"][0]["pub_key"].update(value="!!"), "not base64"),
        (lambda g: g["validators"][0]["pub_key"].update(value="AAAA"), "32 bytes"),
        (lambda g: g["validators"][0]["pub_key"].update(type="secp256k1"), "pub_key.type"),
        (lambda g: g["validators"].append(copy.deepcopy(g["validators"][0])), "duplicate"),
        (lambda g: g["validators"][0].update(address="00" * 20), "does not match"),
        (lambda g: g["app_state"].update(authority="nobody"), "authority"),
        (lambda g: g["app_state"]["accounts"][0].update(balance=-1), r"accounts\[0\].balance"),
        (lambda g: g["app_state"]["accounts"][1].update(address="xyz"), r"accounts\[1\].address"),
        (
            lambda g: g["app_state"]["accounts"].append(dict(g["app_state"]["accounts"][0])),
            "listed twice",
        ),
        (lambda g: g["app_state"].update(params=[]), "params"),
        (lambda g: g["consensus_params"]["block"].update(max_bytes=10), "max_bytes"),
    ],
)
def test_invalid_genesis_names_the_field(change, message):
    obj = genesis_obj()
    change(obj)
    with pytest.raises(GenesisError, match=message):
        Genesis.from_obj(obj)


def test_floats_are_refused():
    text = make_genesis().to_json().replace('"balance": 1000', '"balance": 1000.5', 1)
    with pytest.raises(GenesisError, match="integer"):
        Genesis.from_json(text)


def test_not_json_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(GenesisError, match="not valid JSON"):
        Genesis.from_json("{")
    with pytest.raises(GenesisError, match="cannot read"):
        Genesis.load(tmp_path / "absent.json")


def test_genesis_state_holds_balances_and_supply():
    app = Application(ChainStore(MemoryKV()), make_genesis())
    state = app.state()
    assert get_supply(state) == 4 * 1000
    for account in ACCOUNTS:
        assert get_balance(state, account.address) == 1000
    assert app.info().height == 0


def test_unknown_module_params_are_refused_by_the_application():
    genesis = Genesis.from_obj(
        {**genesis_obj(), "app_state": {**genesis_obj()["app_state"], "params": {"nosuch": {}}}}
    )
    with pytest.raises(GenesisError, match="unknown module"):
        Application(ChainStore(MemoryKV()), genesis)


def test_bad_token_params_are_refused_by_the_application():
    obj = genesis_obj()
    obj["app_state"]["params"]["token"] = {"denom": "u c c"}
    with pytest.raises(GenesisError, match="denom"):
        Application(ChainStore(MemoryKV()), Genesis.from_obj(obj))


def test_reopening_with_a_different_genesis_is_refused():
    kv = MemoryKV()
    Application(ChainStore(kv), make_genesis())
    other = make_genesis(chain_id="another-chain")
    with pytest.raises(GenesisError, match="different genesis"):
        Application(ChainStore(kv), other)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"chain_id": ' + "9" * 5000 + "}", "cannot be read"),
        ("[" * 100_000 + "]" * 100_000, "cannot be read"),
    ],
)
def test_hostile_json_is_a_genesis_error(text, message):
    with pytest.raises(GenesisError, match=message):
        Genesis.from_json(text)


def second_validator(power, name="y"):
    import base64

    from tests.helpers.chain import key

    public = base64.b64encode(key("second" + name).public_key).decode()
    return {
        "name": name,
        "power": power,
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": public},
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g["validators"][0].update(power="9" * 5000), "power"),
        (lambda g: g["validators"][0].update(name="\ud800"), "printable ASCII"),
        (lambda g: g["app_state"]["params"]["token"].update(denom="\ud800"), "surrogate"),
        (lambda g: g.update(genesis_time="9999-12-31T23:59:59-23:59"), "between 1970 and 2262"),
        (
            lambda g: g["validators"].extend(
                [second_validator(2**59), second_validator(2**59, "x")]
            ),
            "total power",
        ),
    ],
)
def test_out_of_range_values_are_genesis_errors(change, message):
    obj = genesis_obj()
    obj["validators"][0]["power"] = 10
    change(obj)
    with pytest.raises(GenesisError, match=message):
        Genesis.from_obj(obj)


def test_non_utf8_file_is_a_genesis_error(tmp_path):
    path = tmp_path / "genesis.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(GenesisError, match="not UTF-8"):
        Genesis.load(path)
