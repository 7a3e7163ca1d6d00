"""worker-lab.toml read both ways, the declared request and its value, and the judge's rules for a user's
app (no pid in its answers, no owner, ids that must be unique). No server is started."""

from __future__ import annotations

import pytest
from labtools import ROOT

from loadtests import declared
from loadtests.checkers import check_counter, check_sessions, check_unique
from workerlab.userapp.declaration import DeclarationError, load

SCENARIOS = ["sync-x1", "sync-x4", "gthread-2x8"]
VALID = """\
[app]
import = "shop:create_app()"
services = ["redis"]

[env]
SECRET_KEY = "x"

[[endpoint]]
name = "hits"
check = "counter"
method = "post"
path = "/hit"
json_pointer = "/hits"
read = "/hits"
expect = { sync-x1 = "correct", sync-x4 = "lost-updates+diverges" }

[[endpoint]]
name = "greet"
check = "isolation"
path = "/greet"
send = { in = "header", name = "X-Name" }
regex = "Hello, (.*)!"
"""


def write(tmp_path, text: str):
    path = tmp_path / "worker-lab.toml"
    path.write_text(text)
    return path


def test_a_valid_declaration_reads_into_endpoints(tmp_path):
    d = load(write(tmp_path, VALID), SCENARIOS)
    assert d.import_path == "shop:create_app()" and d.services == ("redis",) and d.env == {"SECRET_KEY": "x"}
    hits, greet = d.endpoints
    assert hits.method == "POST" and hits.read == {"path": "/hits", "value": {"json": "/hits"}}
    assert hits.expect == {"sync-x1": "correct", "sync-x4": "lost-updates+diverges"}
    assert greet.request()["send"] == {"in": "header", "name": "X-Name"} and greet.value == {"regex": "Hello, (.*)!"}


@pytest.mark.parametrize("example", ["naive-shop", "redis-shop"])
def test_the_examples_declarations_are_valid(example):
    d = load(ROOT / "examples" / example, SCENARIOS + ["scale-out-3"])
    assert d.endpoints and d.requirements.is_file()


@pytest.mark.parametrize("change, message, line", [
    (("method = \"post\"", "metod = \"post\""), "endpoint hits: unknown key 'metod' (did you mean 'method'?)", 11),
    (("check = \"counter\"", "check = \"gauge\""), "unknown check 'gauge'; one of: counter, session", 10),
    (("json_pointer = \"/hits\"\n", ""), "where is the value in the answer?", 9),
    (("json_pointer = \"/hits\"", "json_pointer = \"hits\""), "'json_pointer' is a JSON pointer", 13),
    (("sync-x4 = ", "sync-x9 = "), "expect: unknown scenario 'sync-x9'", 15),
    (("\"lost-updates+diverges\"", "\"lost+diverges\""), "unknown verdict word(s) lost", 15),
    (("services = [\"redis\"]", "services = [\"postgres\"]"), "DATABASE_URL", 3),
    (("SECRET_KEY = \"x\"", "REDIS_URL = \"x\""), "REDIS_URL is the lab's to set", 6),
    (("import = \"shop:create_app()\"", "import = \"shop.create_app\""), "write 'module:app'", 2),
    (("send = { in = \"header\", name = \"X-Name\" }\n", ""), "an isolation check sends a value", 19),
    (("regex = \"Hello, (.*)!\"", "regex = \"Hello, (.*!\""), "'regex' is not a regular expression", 22),
    (("path = \"/greet\"", "path = \"greet\""), "'path' must start with '/'", 20),
])
def test_each_error_names_the_key_and_its_line(tmp_path, change, message, line):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(DeclarationError) as err:
        load(path, SCENARIOS)
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)


def test_not_toml_and_no_file_are_errors(tmp_path):
    with pytest.raises(DeclarationError, match="not valid TOML"):
        load(write(tmp_path, "[app\nimport = 1"))
    with pytest.raises(DeclarationError, match="cannot read it"):
        load(tmp_path / "nothing.toml")
    with pytest.raises(DeclarationError, match="requirements file .* does not exist"):
        load(write(tmp_path, VALID.replace("services", "requirements = \"req.txt\"\nservices")))


def test_the_declared_request_carries_user_and_token_where_declared():
    spec = {"method": "POST", "path": "/a?x=1", "form": {"who": "{user}"}, "send": {"in": "query", "name": "t"}}
    method, path, headers, body = declared.build(spec, "u7", "tok")
    assert (method, path, body) == ("POST", "/a?x=1&t=tok", b"who=u7")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    _, path, headers, body = declared.build({"path": "/b", "send": {"in": "json", "name": "n"}}, "u1", "v")
    assert (path, body, headers["Content-Type"]) == ("/b", b'{"n": "v"}', "application/json")


def test_the_value_is_found_where_declared_or_the_answer_is_shown():
    assert declared.extract({"json": "/a/1/n"}, b'{"a": [0, {"n": "42"}]}') == 42
    assert declared.extract({"regex": r"Hits: (\d+)"}, b"<p>Hits: 7</p>") == 7
    assert declared.extract({"json": ""}, b'"id-1"') == "id-1"
    with pytest.raises(declared.ValueNotFound, match=r"no '/b' in the answer: '\{\"a\": 1\}'"):
        declared.extract({"json": "/b"}, b'{"a": 1}')
    with pytest.raises(declared.ValueNotFound, match="not JSON: '<html>"):
        declared.extract({"json": "/a"}, b"<html>")
    assert declared.answer_fields({"json": "/a"}, 500, b"boom") == {"error": "HTTP 500", "message": "boom"}


def entry(req, client, value, invoke, complete, phase="load", **more):
    return {"client": client, "req": req, "op": "incr", "phase": phase, "invoke": invoke, "complete": complete,
            "status": 200, "value": value, **more}


def test_unique_values_pass_and_a_value_handed_out_twice_fails():
    good = [entry(i, "u0", f"id-{i}", i, i + 0.5) for i in range(5)]
    assert check_unique(good).verdict == {"correct"}
    bad = good + [entry(5, "u1", "id-3", 6, 6.5)]
    result = check_unique(bad)
    assert result.verdict == {"lost-updates"} and result.counts["duplicates"] == 1


def test_a_counter_without_served_by_diverges_when_reads_at_rest_disagree():
    load_ = [entry(i, "u0", i + 1, i, i + 0.5) for i in range(4)]
    agree = load_ + [entry(10 + i, "final", 4, 10, 10.5, phase="final", op="read") for i in range(3)]
    result = check_counter(agree)
    assert result.verdict == {"correct"} and any("not judged" in n for n in result.notes)
    disagree = load_ + [entry(10, "final", 4, 10, 10.5, phase="final"), entry(11, "final", 2, 10, 10.5, phase="final")]
    assert "diverges" in check_counter(disagree).verdict


def test_a_session_without_owner_is_not_judged_for_leaks_and_a_wrong_owner_leaks():
    mine = [entry(i, "u0", i + 1, i, i + 0.5) for i in range(3)]
    assert check_sessions(mine).verdict == {"correct"}
    assert check_sessions([{**e, "owner": "u0"} for e in mine]).verdict == {"correct"}
    assert "leaks" in check_sessions([{**e, "owner": "u9"} for e in mine]).verdict
