"""What Tracecat users rely on when they call `run_python`, checked against executord over
HTTP on every backend this host can run. The behaviours come from Tracecat's own tests
(TracecatHQ/tracecat, read at 4209a655b): `tests/registry/test_core_python.py` (TCP below:
the nsjail sandbox service) and `tests/unit/test_unsafe_pid_executor.py` (UPE: the fallback
executor). Each test names the Tracecat test(s) it stands for; the scripts and assertions are
our own. tests/integration/test_python_contract.py holds executord's own, finer contract.

Tracecat tests that do not apply to executord, and why:
- TCP TestScriptValidation: call `validate_run_python_script`, an internal function. Its
  rules (no function; several without `main`) are checked here through the API instead.
- TCP test_script_with_dependencies / _openpyxl_ / _ocsf_dependency: install `requests`,
  `openpyxl`, `py-ocsf-models` from PyPI, which this machine cannot reach. The behaviour
  (a declared package imports, pins hold, native wheels install) is tests/deps', with
  packages those tests build and serve themselves.
- TCP test_network_enabled_when_requested: fetches httpbin.org. Network-enabled jobs are
  tested in tests/network, inside namespaces that suite creates (no packet leaves the host).
- TCP TestMultiTenantIsolation: `_compute_cache_key` internals (a 16-hex-digit key; a
  workspace id in it). executord has no workspaces; that different requirement sets get
  different, mutually invisible environments is tested in tests/deps.
- TCP TestPyPIConfiguration: Tracecat's config module and `_build_env_map` internals, and
  a default index of https://pypi.org/simple. executord deliberately has no default
  index (nothing is fetched implicitly: no configured source = 422); its
  `--pip-index-url`, `--pip-extra-index-url` and `--pip-find-links` are tested in tests/deps.
- UPE test_dependency_setup_uses_process_group_cleanup: mocks `create_subprocess_exec`
  around `uv venv`/`uv pip install`. executord installs in a sandbox of its own whose whole
  process tree dies with it (tests/deps).
- UPE test_process_probe_handles_procfs_exit_race, test_pid_probe_timeout_handles_process_
  lookup_error: test the test helper / the `unshare` probe, Tracecat internals.
- UPE test_build_execution_cmd_with_pid_namespace / _without_pid_namespace_uses_supervisor,
  test_pid_isolation_warning_logged_once, test_network_isolation_warning_logs_once_when_
  disallowed, test_no_network_warning_when_network_is_explicitly_allowed: Tracecat's
  fallback runs a script with less isolation than asked and logs a warning. executord never
  does (fail closed: a sandbox that cannot be built ends the job `SandboxError`); what is
  observable — the script's own PID namespace, no network without `allow_network` — is
  tested below.
- UPE test_execute_non_positive_timeout_reaps_subprocess: Tracecat starts the script and
  kills it at once (SandboxTimeoutError). executord refuses a timeout <= 0 with 422 naming
  `timeout_seconds`, so no process is ever started; test_non_positive_timeout checks that.
- UPE test_execute_reports_recursive_dataclass_as_serialization_error also checks the
  executor's internal `output` (the value's repr) that Tracecat's service drops before the
  caller; executord likewise returns no result for a failed job. The error text is checked.
"""

import pwd
import random
import textwrap

import pytest

from executord_client import CANARY_NAME, CANARY_VALUE, processes_with_arg, wait_gone


def src(text):
    return textwrap.dedent(text).lstrip("\n")


def run(client, backend, script, timeout=60, **fields):
    return client.run(src(script), backend=backend, timeout=timeout, **fields)


def succeeded(client, backend, script, **fields):
    job = run(client, backend, script, **fields)
    assert job["status"] == "succeeded", (job["error"], job)  # the error first: reprs get cut
    assert job["error"] is None, job
    return job


def failed(client, backend, script, etype, **fields):
    job = run(client, backend, script, **fields)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == etype, job["error"]
    assert job["result"] is None, job
    return job


def marker():
    """An argv element no other process has: finds a job's descendants from the host."""
    return f"1000.{random.randint(10**8, 10**9 - 1)}"


def sandbox_only(backend):
    if backend == "direct":
        pytest.skip("direct does not isolate the filesystem or network (by design)")


# --- which function runs, with which inputs -----------------------------------------------

def test_basic_script(client, backend):
    # TCP test_basic_script_execution; UPE test_execute_basic_script: main() runs, its
    # return value is the result and what it prints is kept.
    job = succeeded(client, backend, """
        def main():
            print('Hello from the sandbox')
            value = 10 * 2
            return value
    """)
    assert job["result"] == 20
    assert client.logs(job["id"]).json()["stdout"] == "Hello from the sandbox\n"


def test_inputs_become_keyword_arguments(client, backend):
    # TCP test_script_with_function_arguments: inputs are passed by name; a float stays a float.
    job = succeeded(client, backend, """
        def process_item(item_name, qty, price):
            print(f'Processing: {item_name}, quantity: {qty}')
            return qty * price
    """, inputs={"item_name": "TestItem", "qty": 10, "price": 2.5})
    assert job["result"] == 25.0 and type(job["result"]) is float


def test_missing_argument_is_a_type_error(client, backend):
    # TCP test_script_with_partial_arguments: an input the function needs but did not get is
    # a TypeError reported as SandboxExecutionError, naming the parameter.
    job = failed(client, backend, """
        def process_data(a, b, c):
            return (a or 0) + (b or 0) + (c or 0)
    """, "SandboxExecutionError", inputs={"a": 10, "b": 5})
    msg = job["error"]["message"]
    assert "TypeError" in msg and "missing 1 required positional argument" in msg and "'c'" in msg, msg


def test_main_is_chosen_among_several_functions(client, backend):
    # TCP test_main_function_with_arguments, test_doc_example_multiple_functions,
    # TestScriptValidation.test_script_with_multiple_functions_with_main.
    job = succeeded(client, backend, """
        def helper_function(x):
            return x * 2

        def main(value):
            result = helper_function(value)
            return result + 10
    """, inputs={"value": 5})
    assert job["result"] == 20


def test_single_function_not_named_main(client, backend):
    # TCP TestSingleFunctionInputs (both tests), TestScriptValidation.test_single_function_not_named_main.
    job = succeeded(client, backend, """
        def process_order(item_name, quantity, price_per_item):
            total_cost = quantity * price_per_item
            return f"Order: {quantity}x {item_name} = ${total_cost:.2f}"
    """, inputs={"item_name": "Widget", "quantity": 3, "price_per_item": 15.99})
    assert job["result"] == "Order: 3x Widget = $47.97"
    job = succeeded(client, backend, "def calculate_pi_approximation():\n    return 22 / 7\n")
    assert abs(job["result"] - 22 / 7) < 1e-9


@pytest.mark.parametrize("script,inputs,expected", [
    # TCP test_doc_example_function_no_inputs
    ("def main():\n    return 10 * 5 + 3\n", None, 53),
    # TCP test_doc_example_function_with_inputs
    ("def main(a, b):\n    return a * b + 3\n", {"a": 10, "b": 5}, 53),
    # TCP test_doc_example_multiple_functions
    ("def calculate_tax(amount, rate):\n    return amount * rate\n\n"
     "def main(subtotal, tax_rate):\n    return subtotal + calculate_tax(subtotal, tax_rate)\n",
     {"subtotal": 100.0, "tax_rate": 0.08}, 108.0),
], ids=["no-inputs", "with-inputs", "multiple-functions"])
def test_documentation_examples(client, backend, script, inputs, expected):
    # TCP TestDocumentationExamples: the examples of Tracecat's run_python documentation.
    assert succeeded(client, backend, script, inputs=inputs)["result"] == expected


def test_script_without_a_function_is_refused(client, backend):
    # TCP TestScriptValidation.test_script_with_no_function.
    job = failed(client, backend, """
        x = 10
        print("This script has no function")
        x * 2
    """, "SandboxValidationError")
    assert "must contain at least one function" in job["error"]["message"], job["error"]


def test_several_functions_without_main_are_refused(client, backend):
    # TCP TestScriptValidation.test_script_with_multiple_functions_no_main.
    job = failed(client, backend, """
        def func1():
            return "Function 1"

        def func2():
            return "Function 2"
    """, "SandboxValidationError")
    assert "one must be named 'main'" in job["error"]["message"], job["error"]


@pytest.mark.parametrize("inputs", [None, {}], ids=["none", "empty"])
def test_no_inputs_calls_without_arguments(client, backend, inputs):
    # TCP TestInputValidation.test_none_inputs_work, test_empty_dict_inputs_work.
    job = succeeded(client, backend, "def main():\n    return 'No inputs needed'\n", inputs=inputs)
    assert job["result"] == "No inputs needed"


def test_structured_inputs(client, backend):
    # TCP test_complex_data_types_with_arguments, TestInputValidation.test_dict_inputs_work_correctly,
    # test_nested_dict_inputs_work: lists and nested objects arrive as Python lists and dicts
    # (key order kept) and come back unchanged.
    job = succeeded(client, backend, """
        def main(data_list, data_dict, user_data, settings):
            return {
                "input_list": data_list,
                "input_dict": data_dict,
                "processed": {"list_length": len(data_list), "dict_keys": list(data_dict.keys())},
                "line": f"User: {user_data['name']}, Theme: {settings['theme']}",
            }
    """, inputs={"data_list": [1, 2, 3, 4, 5], "data_dict": {"b": 2, "a": 1},
                 "user_data": {"name": "Bob", "age": 25}, "settings": {"theme": "dark", "lang": "en"}})
    assert job["result"] == {
        "input_list": [1, 2, 3, 4, 5],
        "input_dict": {"b": 2, "a": 1},
        "processed": {"list_length": 5, "dict_keys": ["b", "a"]},
        "line": "User: Bob, Theme: dark",
    }


def test_large_input(client, backend):
    # TCP TestSecurityIsolation.test_large_input_handling.
    job = succeeded(client, backend, "def main(data):\n    return f'Received {len(data)} items'\n",
                    inputs={"data": list(range(10000))})
    assert job["result"] == "Received 10000 items"


@pytest.mark.parametrize("value,expected", [
    # TCP test_command_injection_via_inputs
    ('"); import os; os.system("cat /etc/passwd"); print("',
     'Processed: "); import os; os.system("cat /etc/passwd"); print("'),
    # TCP test_nested_function_calls_safe
    ("__import__('os').system('id')", "Processed: __IMPORT__('OS').SYSTEM('ID')"),
], ids=["quote-breakout", "dunder-import"])
def test_inputs_are_data_not_code(client, backend, value, expected):
    # TCP TestSecurityIsolation: an input that looks like code is passed as a plain string.
    job = succeeded(client, backend, """
        def shout(data):
            return data.upper() if "__import__" in data else data

        def main(user_input):
            return f"Processed: {shout(user_input)}"
    """, inputs={"user_input": value})
    assert job["result"] == expected
    assert client.logs(job["id"]).json()["stdout"] == "", "nothing of the input may have run"


def test_async_main_is_awaited(client, backend):
    # Tracecat's wrapper (`_resolve_output`) awaits a coroutine the function returns.
    job = succeeded(client, backend, """
        import asyncio

        async def main(n):
            await asyncio.sleep(0)
            return n * 2
    """, inputs={"n": 21})
    assert job["result"] == 42


# --- results that are not JSON -------------------------------------------------------------

def test_non_json_leaf_values_are_normalized(client, backend):
    # TCP test_non_json_leaf_values_are_normalized; UPE test_execute_normalizes_non_json_leaf_values.
    job = succeeded(client, backend, """
        from datetime import datetime

        def main():
            return {
                "all_ips": {"2.2.2.2", "1.1.1.1"},
                "seen_at": datetime(2026, 3, 30, 13, 9, 52),
                "nested": [{"ports": {443, 80}}],
            }
    """)
    assert job["result"] == {"all_ips": ["1.1.1.1", "2.2.2.2"], "seen_at": "2026-03-30T13:09:52",
                             "nested": [{"ports": [80, 443]}]}


def test_mixed_sets_are_normalized_deterministically(client, backend):
    # TCP test_mixed_sets_are_normalized_deterministically; UPE
    # test_execute_normalizes_mixed_sets_deterministically: unorderable sets sort by repr.
    job = succeeded(client, backend, """
        def main():
            return {"mixed": {1, "a"}, "nested": [{"values": {2, None}}]}
    """)
    assert job["result"] == {"mixed": ["a", 1], "nested": [{"values": [2, None]}]}


def test_dataclass_instances_and_classes_are_normalized(client, backend):
    # TCP test_dataclass_instances_and_classes_are_normalized; UPE
    # test_execute_normalizes_dataclass_instances_and_classes: an instance becomes its fields,
    # a class its repr — with the module name `__main__`, as the script runs as __main__.
    job = succeeded(client, backend, """
        from dataclasses import dataclass

        @dataclass
        class Finding:
            name: str

        def main():
            return {"instance": Finding("alert"), "class": Finding}
    """)
    assert job["result"] == {"instance": {"name": "alert"}, "class": "<class '__main__.Finding'>"}


def test_recursive_dataclass_is_a_serialization_error(client, backend):
    # TCP test_recursive_dataclass_uses_serialization_error_fallback; UPE
    # test_execute_reports_recursive_dataclass_as_serialization_error.
    job = failed(client, backend, """
        from dataclasses import dataclass

        @dataclass
        class Node:
            name: str
            child: object = None

        def main():
            root = Node("root")
            root.child = root
            return root
    """, "SandboxExecutionError")
    msg = job["error"]["message"]
    assert "Output not JSON-serializable" in msg, msg
    assert "Recursive dataclass values are not JSON-serializable" in msg, msg


# --- errors and timeouts -------------------------------------------------------------------

def test_exception_message_is_type_and_text(client, backend):
    # TCP test_script_error_handling, test_clean_error_messages: the error reads
    # "ValueError: <message>"; the traceback is kept apart from it.
    job = failed(client, backend, """
        def main(value):
            if value is None:
                raise ValueError("Invalid input provided")
            return value * 2
    """, "SandboxExecutionError", inputs={"value": None})
    assert job["error"]["message"] == "ValueError: Invalid input provided", job["error"]
    assert "Traceback" not in job["error"]["message"]
    assert "ValueError: Invalid input provided" in job["error"]["traceback"]


def test_timeout(client, backend):
    # TCP test_script_timeout: a script that never returns ends in SandboxTimeoutError whose
    # message says it timed out, soon after the limit.
    job = run(client, backend, """
        import time

        def main():
            while True:
                time.sleep(0.1)
    """, timeout_seconds=2, timeout=30)
    assert job["status"] == "timed_out", job
    assert job["error"]["type"] == "SandboxTimeoutError", job["error"]
    assert "timed out" in job["error"]["message"].lower(), job["error"]
    assert job["run_ms"] < 6000, job


@pytest.mark.parametrize("timeout_seconds", [0, -1])
def test_non_positive_timeout(client, backend, timeout_seconds):
    # UPE test_execute_non_positive_timeout_reaps_subprocess: a timeout of 0 or less leaves no
    # process behind. executord refuses it before anything starts (see the module docstring).
    r = client.post_job({"script": "def main():\n    return 42\n", "backend": backend,
                         "timeout_seconds": timeout_seconds})
    assert r.status == 422, r
    assert "timeout_seconds" in r.error["message"], r.error


# --- the script's process tree -------------------------------------------------------------

def test_subprocess_run(client, backend):
    # TCP test_subprocess_support: subprocess.run works, its captured output comes back.
    job = succeeded(client, backend, """
        import subprocess

        def main():
            r = subprocess.run(['echo', 'Hello from subprocess'], capture_output=True, text=True)
            return r.stdout.strip()
    """)
    assert job["result"] == "Hello from subprocess"


@pytest.mark.parametrize("detached", [False, True], ids=["child", "new-session"])
def test_background_descendants_die_when_the_script_returns(client, backend, detached):
    # UPE test_execute_kills_background_descendants_holding_output_pipes (a child that keeps
    # stdout open) and test_execute_without_pid_namespace_reaps_detached_descendant (a child
    # in a session of its own, output elsewhere): the job still ends when main returns, and
    # the child is killed.
    m = marker()
    extra = ("stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True"
             if detached else "")
    job = succeeded(client, backend, f"""
        import subprocess

        def main():
            child = subprocess.Popen(["sleep", "{m}"], stdin=subprocess.DEVNULL, {extra})
            return child.pid
    """, timeout_seconds=60)
    assert isinstance(job["result"], int)
    assert job["run_ms"] < 5000, "the job must not wait for its background child"
    assert wait_gone(m, 5), processes_with_arg(m)


def test_descendants_die_on_timeout(client, backend):
    # UPE test_execute_kills_descendants_on_timeout.
    m = marker()
    job = run(client, backend, f"""
        import subprocess, time

        def main():
            subprocess.Popen(["sleep", "{m}"], stdin=subprocess.DEVNULL)
            time.sleep(30)
    """, timeout_seconds=1)
    assert job["status"] == "timed_out" and job["error"]["type"] == "SandboxTimeoutError", job
    assert wait_gone(m, 5), processes_with_arg(m)


def test_descendants_die_on_cancellation(client, backend):
    # UPE test_execute_kills_descendants_on_cancellation: cancelling the run kills the script
    # and its children (the async client's cancellation ends in this same call).
    m = marker()
    job = client.submit({"backend": backend, "timeout_seconds": 30, "script": src(f"""
        import subprocess, time

        def main():
            subprocess.Popen(["sleep", "{m}"], stdin=subprocess.DEVNULL)
            print("started", flush=True)
            time.sleep(30)
    """)})
    client.wait_output(job["id"], "started")
    assert processes_with_arg(m), "the child should be running"
    assert client.cancel(job["id"]).status == 200
    done = client.wait_final(job["id"], timeout=15)
    assert done["status"] == "cancelled", done
    assert wait_gone(m, 5), processes_with_arg(m)


def test_script_has_its_own_pid_namespace(client, backend):
    # UPE test_build_execution_cmd_with_pid_namespace: Tracecat runs the script under
    # `unshare --pid --fork --kill-child`; here every backend gives it a PID namespace.
    job = succeeded(client, backend, """
        import os

        def main():
            return {"me": os.getpid(), "seen": [int(d) for d in os.listdir('/proc') if d.isdigit()]}
    """)
    r = job["result"]
    # A fresh namespace numbers from 1: the script is among its first processes, and sees
    # no more than its own few (a sandbox's /proc may hide even the namespace's init).
    assert r["me"] < 10 and r["me"] in r["seen"] and len(r["seen"]) < 10, r


# --- environment ---------------------------------------------------------------------------

def test_env_vars_are_injected(client, backend):
    # TCP test_env_vars_injection; UPE test_execute_includes_explicit_env_vars.
    job = succeeded(client, backend, """
        import os

        def main():
            return [os.environ.get('TEST_SECRET', 'not found'), os.environ.get('INJECTED')]
    """, env_vars={"TEST_SECRET": "secret_value_123", "INJECTED": "value"})
    assert job["result"] == ["secret_value_123", "value"]


def test_service_environment_is_not_inherited(client, backend):
    # UPE test_execute_does_not_inherit_process_env: a variable of the service's own
    # environment is invisible to the script and to what it starts.
    job = succeeded(client, backend, f"""
        import os, subprocess

        def main():
            child = subprocess.run(["env"], capture_output=True, text=True).stdout
            return [os.environ.get("{CANARY_NAME}"), "{CANARY_VALUE}" in child]
    """)
    assert job["result"] == [None, False]


# --- isolation (sandbox backends) ----------------------------------------------------------

def test_network_disabled_by_default(server, client, backend):
    # TCP test_network_disabled_by_default, test_basic_scripts_work_without_network,
    # test_builtin_modules_work_without_network: without allow_network a request fails from
    # inside the script (here: executord's own port, on loopback and through the address a
    # network-enabled job would use for the host), while computation and the standard
    # library work.
    sandbox_only(backend)
    job = succeeded(client, backend, f"""
        import datetime, json, math, urllib.request

        def main(x, y):
            seen = []
            for host in ("127.0.0.1", "10.0.2.2"):
                try:
                    urllib.request.urlopen("http://%s:{server.port}/healthz" % host, timeout=3)
                    seen.append("Network access allowed")
                except Exception as e:
                    seen.append(f"Network blocked: {{type(e).__name__}}")
            data = json.dumps({{"value": math.pi, "timestamp": str(datetime.datetime.now())}})
            return {{"seen": seen, "product": x * y + 10, "data": json.loads(data)["value"]}}
    """, inputs={"x": 5, "y": 3})
    r = job["result"]
    assert all(s.startswith("Network blocked") for s in r["seen"]), r
    assert r["product"] == 25 and abs(r["data"] - 3.141592653589793) < 1e-12, r


def test_filesystem_isolation(client, backend):
    # TCP test_file_system_isolation: /etc/passwd is the sandbox's own, not the host's.
    sandbox_only(backend)
    host_users = {p.pw_name for p in pwd.getpwall()} - {"root", "nobody", "sandbox"}
    job = succeeded(client, backend, """
        def main():
            try:
                with open('/etc/passwd') as f:
                    return f.read()
            except OSError as e:
                return f"Error: {type(e).__name__}"
    """)
    content = job["result"]
    if not content.startswith("Error"):
        names = {line.split(":")[0] for line in content.splitlines() if line}
        assert "sandbox" in names, content
        assert not names & host_users, f"the host's users are visible: {names & host_users}"


# --- the script's base environment (Tracecat's SANDBOX_BASE_ENV) ---------------------------
# Tracecat's executors start the script with PATH, HOME, LANG and LC_ALL (C.UTF-8),
# PYTHONUNBUFFERED=1 and PYTHONDONTWRITEBYTECODE=1, then env_vars on top (they may override),
# and nothing else; a PYTHONPATH in env_vars reaches sys.path ahead of the standard library.

BASE_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def test_base_environment(client, backend):
    # TCP test_env_vars_injection and UPE test_execute_includes_explicit_env_vars with
    # Tracecat's SANDBOX_BASE_ENV / UPE's exec_env: exactly the base and env_vars, in the
    # script and in what it starts.
    job = succeeded(client, backend, """
        import os, subprocess

        def main():
            child = subprocess.run(["env", "-0"], capture_output=True).stdout.decode()
            return {
                "env": dict(os.environ),
                "child": dict(kv.split("=", 1) for kv in child.split("\\0") if kv),
            }
    """, env_vars={"INJECTED": "value"})
    r = job["result"]
    env = r["env"]
    assert set(env) == BASE_ENV | {"INJECTED"}, sorted(env)
    assert r["child"] == env, "what the script starts inherits the same environment"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin", env
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8", env
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1", env
    assert env["INJECTED"] == "value"


def test_home_is_writable(client, backend, request):
    # Tracecat's HOME is /tmp (nsjail) or the worker's own HOME (UPE): a folder the script can
    # write to (~/.cache, ~/.config). executord's is the job's working folder.
    if backend == "direct":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "direct: HOME is the job's folder under the 0700 data dir, which the job's uid "
            "cannot traverse by path (it can only use it as its cwd)")))
    job = succeeded(client, backend, """
        import os

        def main():
            home = os.environ["HOME"]
            with open(os.path.join(home, ".parity"), "w") as f:
                f.write("ok")
            with open(os.path.expanduser("~/.parity")) as f:
                return f.read()
    """)
    assert job["result"] == "ok"


def test_env_vars_override_the_base(client, backend):
    # Tracecat applies env_vars after SANDBOX_BASE_ENV (`exec_env.update(env_vars)`), so a
    # caller's LC_ALL or HOME wins.
    job = succeeded(client, backend, """
        import os

        def main():
            return [os.environ.get("LC_ALL"), os.environ.get("HOME")]
    """, env_vars={"LC_ALL": "C", "HOME": "/tmp"})
    assert job["result"] == ["C", "/tmp"]


def test_utf8_locale_and_unbuffered_children(client, backend):
    # LANG/LC_ALL=C.UTF-8 and PYTHONUNBUFFERED=1 as Tracecat sets them: a Python the script
    # starts uses UTF-8 and its unflushed prints reach the logs while it still runs.
    job = client.submit({"backend": backend, "timeout_seconds": 30, "script": src("""
        import subprocess, sys

        CHILD = (
            "import locale, sys, time\\n"
            "print(sys.stdout.encoding, locale.setlocale(locale.LC_ALL, ''), 'h\\u00e9llo')\\n"
            "time.sleep(30)\\n"
        )

        def main():
            subprocess.run([sys.executable, "-c", CHILD])
    """)})
    r = client.wait_output(job["id"], "héllo")
    assert r.text.split() == ["utf-8", "C.UTF-8", "héllo"], r.text
    assert r.headers.get("X-Job-Status") == "running", "the child's unflushed print must arrive before it ends"
    assert client.cancel(job["id"]).status == 200
    assert client.wait_final(job["id"])["status"] == "cancelled"


def test_no_bytecode_written(client, backend):
    # PYTHONDONTWRITEBYTECODE=1 as Tracecat sets it: importing a module writes no __pycache__,
    # neither in the script nor in a Python it starts.
    job = succeeded(client, backend, """
        import os, subprocess, sys, tempfile

        def main():
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "helper_mod.py"), "w") as f:
                f.write("VALUE = 7\\n")
            sys.path.insert(0, d)
            import helper_mod
            with open(os.path.join(d, "helper_mod2.py"), "w") as f:
                f.write("VALUE = 8\\n")
            subprocess.run([sys.executable, "-c", "import helper_mod2"], cwd=d, check=True,
                           env=dict(os.environ, PYTHONPATH=d))
            return {"value": helper_mod.VALUE, "files": sorted(os.listdir(d)),
                    "flag": sys.dont_write_bytecode}
    """)
    assert job["result"] == {"value": 7, "files": ["helper_mod.py", "helper_mod2.py"], "flag": True}


def test_pythonpath_from_env_vars_comes_first(client, backend):
    # Tracecat passes a PYTHONPATH given in env_vars on to the interpreter (UPE: in exec_env;
    # nsjail: appended to its own PYTHONPATH), so its folders precede the standard library and
    # site-packages, in order, and a module there shadows a standard one; children see it too.
    tag = f"executord-parity-{random.randint(10**8, 10**9 - 1)}"
    first, second = f"/tmp/{tag}/a", f"/tmp/{tag}/b"
    job = succeeded(client, backend, f"""
        import importlib, os, shutil, subprocess, sys

        def main():
            try:
                for d in ({first!r}, {second!r}):
                    os.makedirs(d)
                with open({first!r} + "/colorsys.py", "w") as f:
                    f.write("SHADOWED = 'mine'\\n")
                with open({second!r} + "/parity_helper.py", "w") as f:
                    f.write("VALUE = 42\\n")
                importlib.invalidate_caches()
                import colorsys, parity_helper
                child = subprocess.run([sys.executable, "-c", "import colorsys; print(colorsys.SHADOWED)"],
                                       capture_output=True, text=True).stdout.strip()
                return {{"path": sys.path, "lib": sys.base_prefix.rstrip("/") + "/lib",
                         "colorsys": getattr(colorsys, "SHADOWED", colorsys.__file__),
                         "helper": parity_helper.VALUE, "child": child,
                         "env": os.environ.get("PYTHONPATH")}}
            finally:
                shutil.rmtree({f"/tmp/{tag}"!r}, ignore_errors=True)
    """, env_vars={"PYTHONPATH": f"{first}:{second}"})
    r = job["result"]
    path = r["path"]
    assert first in path and second in path and path.index(first) < path.index(second), path
    system = [i for i, p in enumerate(path) if p.startswith(r["lib"]) or "-packages" in p]
    assert system and path.index(second) < min(system), f"PYTHONPATH must precede {path}"
    assert r["colorsys"] == "mine" and r["child"] == "mine", r
    assert r["helper"] == 42 and r["env"] == f"{first}:{second}", r


@pytest.mark.parametrize("name", ["1BAD", "BAD-NAME", "A B"])
def test_invalid_env_var_name_uses_tracecats_words(client, name):
    # Tracecat's `_validate_env_key`: "Invalid environment variable key: '<key>'. Keys must
    # match pattern [A-Za-z_][A-Za-z0-9_]*" — callers match on that text.
    r = client.post_job({"script": "def main():\n    return 1\n", "env_vars": {name: "x"}})
    assert r.status == 422, r
    msg = r.error["message"]
    assert f"Invalid environment variable key: '{name}'" in msg, msg
    assert "Keys must match pattern [A-Za-z_][A-Za-z0-9_]*" in msg, msg
