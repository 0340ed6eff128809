#!/usr/bin/env python3
"""Validates the shipping artefacts without Docker, Kubernetes or helm.

    validate.py PROXY_BINARY SOURCE_DIR

- every YAML file under deploy/ parses (multi-document); Helm templates are rendered instead,
  by a small interpreter of the Go-template subset the chart uses (see RENDERER below);
- every proxy config embedded in a ConfigMap (kubernetes manifests, rendered chart) and every
  deploy/examples/*.yaml passes `clerk-m2m-proxy --check` (prints "config ok") with fake keys;
- every Deployment: proxy ports match the config's listen/admin.listen, probes hit /healthz and
  /readyz on the admin port, terminationGracePeriodSeconds > preStop sleep + drain_timeout,
  the securityContext is locked down, resources are set, the config is mounted without subPath;
- every .Values.x.y a chart template references exists in values.yaml;
- every Kubernetes object (manifests, rendered chart variants) against the official Kubernetes
  OpenAPI schemas, with the `kubernetes-models` npm package (installed once into a cache dir);
- docker/Dockerfile: the runtime stage installs exactly the Debian packages that own the
  libraries `ldd` reports for the built binary (plus ca-certificates), and the rest of the
  image contract (non-root numeric USER, EXPOSE 8080 9901, no HEALTHCHECK, ENTRYPOINT).

Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # a pyenv/venv python3 first on PATH: fall back to Debian's (python3-yaml)
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath(
            "/usr/bin/python3") and not os.environ.get("VALIDATE_REEXEC"):
        os.environ["VALIDATE_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("validate.py: PyYAML missing (apt-get install python3-yaml)")
    print("0 passed, 1 failed")
    sys.exit(1)

IMAGE_CONFIG_PATH = "/etc/clerk-m2m-proxy/config.yaml"  # docker/Dockerfile ENTRYPOINT
PROXY_CONTAINER = "clerk-m2m-proxy"
FAKE_ENV = {
    "CLERK_MACHINE_SECRET_KEY": "ak_fake_validation_only",
    "CLERK_SECRET_KEY": "sk_test_fake_validation_only",
    "CLERK_MACHINE_ID": "mch_fake_validation_only",
    "REDIS_URL": "redis://:fake-validation-only@redis.validation.invalid:6379/0",
}
SANITIZER_LIBS = ("libasan", "libubsan", "libtsan", "liblsan", "libhwasan")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, where, what):
        self.passed += 1
        print(f"ok   {where}: {what}")

    def fail(self, where, what):
        self.failed += 1
        print(f"FAIL {where}: {what}")

    def check(self, cond, where, what, problem=None):
        if cond:
            self.ok(where, what)
        else:
            self.fail(where, problem or what)
        return cond


R = Report()


# ----------------------------------------------------------------------------------------------
# RENDERER: the Go-template subset used by deploy/helm (text, {{- -}} trimming, comments,
# define/include, if/else if/else/end, pipelines, and the functions in FUNCS). `range`, `with`
# and variables other than `$` are deliberately unsupported: keep the chart within this subset.
# ----------------------------------------------------------------------------------------------
class TemplateError(Exception):
    pass


class Fail(TemplateError):
    pass


def lex(src, name):
    """-> list of ('text', s) / ('action', s); trims per {{- and -}}, drops comments."""
    out, i, n = [], 0, len(src)
    while i < n:
        j = src.find("{{", i)
        if j < 0:
            out.append(["text", src[i:]])
            break
        out.append(["text", src[i:j]])
        k = j + 2
        ltrim = src.startswith("-", k) and (k + 1 < n and src[k + 1] in " \t\n")
        if ltrim:
            k += 1
        # a comment runs to */ (it may contain braces), then }} (Go's lexer does the same)
        cs = k
        while cs < n and src[cs] in " \t\n":
            cs += 1
        if src.startswith("/*", cs):
            e = src.find("*/", cs + 2)
            if e < 0:
                raise TemplateError(f"{name}: unclosed comment at offset {j}")
            m = e + 2
            while m < n and src[m] in " \t\n-":
                m += 1
            if not src.startswith("}}", m):
                raise TemplateError(f"{name}: comment not followed by }}}} at offset {j}")
            rtrim = src[e + 2:m].strip() == "-"
            if ltrim and out:
                out[-1][1] = out[-1][1].rstrip(" \t\r\n")
            i = m + 2
            if rtrim:
                while i < n and src[i] in " \t\r\n":
                    i += 1
            continue
        # scan to the closing }} outside string literals
        m, quote = k, None
        while m < n:
            c = src[m]
            if quote:
                if c == "\\" and quote == '"':
                    m += 2
                    continue
                if c == quote:
                    quote = None
            elif c in "\"`":
                quote = c
            elif src.startswith("}}", m):
                break
            m += 1
        else:
            raise TemplateError(f"{name}: unclosed action at offset {j}")
        body = src[k:m]
        rtrim = body.endswith(" -") or body.endswith("\t-") or body.endswith("\n-")
        if rtrim:
            body = body[:-1]
        if ltrim and out:
            out[-1][1] = out[-1][1].rstrip(" \t\r\n")
        body = body.strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            out.append(["action", body])
        else:
            out.append(["text", ""])
        i = m + 2
        if rtrim:
            while i < n and src[i] in " \t\r\n":
                i += 1
    return [tuple(t) for t in out if not (t[0] == "text" and t[1] == "")]


TOKEN_RE = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(`[^`]*`)|(\()|(\))|(\|)|'
                      r'(\$?(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\$|\.)|(-?\d+(?:\.\d+)?)|'
                      r'([A-Za-z_][A-Za-z0-9_]*))')


def tokenize(expr):
    toks, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse expression near {expr[pos:]!r}")
        s, raw, lp, rp, bar, field, num, ident = m.groups()
        if s is not None:
            toks.append(("str", bytes(s[1:-1], "utf-8").decode("unicode_escape")))
        elif raw is not None:
            toks.append(("str", raw[1:-1]))
        elif lp:
            toks.append(("(", None))
        elif rp:
            toks.append((")", None))
        elif bar:
            toks.append(("|", None))
        elif field is not None:
            toks.append(("field", field))
        elif num is not None:
            toks.append(("num", float(num) if "." in num else int(num)))
        elif ident in ("true", "false"):
            toks.append(("lit", ident == "true"))
        elif ident == "nil":
            toks.append(("lit", None))
        else:
            toks.append(("ident", ident))
        pos = m.end()
    return toks


def parse_pipeline(toks, i=0, stop=None):
    """-> (list of commands, next index); a command is a list of operands."""
    cmds, cur = [], []
    while i < len(toks) and toks[i][0] != stop:
        kind, val = toks[i]
        if kind == "|":
            cmds.append(cur)
            cur = []
            i += 1
        elif kind == "(":
            sub, i = parse_pipeline(toks, i + 1, ")")
            cur.append(("pipe", sub))
            i += 1
        else:
            cur.append((kind, val))
            i += 1
    cmds.append(cur)
    return cmds, i


def parse_template(tokens, name):
    """-> (nodes, defines). Node: ('text', s) | ('out', cmds) | ('if', [(cond, body)], else)."""
    defines = {}
    pos = 0

    def block(terminators):
        nonlocal pos
        nodes = []
        while pos < len(tokens):
            kind, s = tokens[pos]
            if kind == "text":
                nodes.append(("text", s))
                pos += 1
                continue
            word = s.split(None, 1)[0] if s else ""
            if word in terminators:
                return nodes, s
            pos += 1
            if word == "if":
                branches, els = [], None
                cond = s[2:].strip()
                while True:
                    body, term = block(("else", "end"))
                    branches.append((parse_pipeline(tokenize(cond))[0], body))
                    pos += 1
                    if term == "end":
                        break
                    rest = term[4:].strip()
                    if rest.startswith("if "):
                        cond = rest[3:].strip()
                        continue
                    els, _ = block(("end",))
                    pos += 1
                    break
                nodes.append(("if", branches, els))
            elif word == "define":
                dname = tokenize(s[6:])[0][1]
                body, _ = block(("end",))
                pos += 1
                defines[dname] = body
            elif word in ("range", "with", "block", "template") or ":=" in s:
                raise TemplateError(f"{name}: '{word}' is outside the supported template subset")
            else:
                nodes.append(("out", parse_pipeline(tokenize(s))[0]))
        if terminators:
            raise TemplateError(f"{name}: missing {{{{ end }}}}")
        return nodes, None

    nodes, _ = block(())
    return nodes, defines


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == [] or v == {})


def go_str(v):
    if v is None:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return "map[...]" if isinstance(v, dict) else "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def go_quote(v):
    import json
    return json.dumps(go_str(v) if v is not None else "")


def to_yaml(v):
    if v is None or v == {} or v == []:
        return "{}" if not isinstance(v, list) else "[]"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def go_printf(fmt, *args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            if verb == "%":
                out.append("%")
            else:
                a = args[ai]
                ai += 1
                out.append(str(int(a)) if verb == "d" else
                           go_quote(a) if verb == "q" else go_str(a))
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


class Engine:
    def __init__(self):
        self.defines = {}

    def load(self, src, name):
        nodes, defines = parse_template(lex(src, name), name)
        self.defines.update(defines)
        return nodes

    def render(self, nodes, dot, root):
        out = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "out":
                out.append(go_str(self.pipeline(node[1], dot, root)))
            else:
                _, branches, els = node
                for cond, body in branches:
                    if truthy(self.pipeline(cond, dot, root)):
                        out.append(self.render(body, dot, root))
                        break
                else:
                    if els is not None:
                        out.append(self.render(els, dot, root))
        return "".join(out)

    def operand(self, op, dot, root):
        kind, val = op
        if kind in ("str", "num", "lit"):
            return val
        if kind == "pipe":
            return self.pipeline(val, dot, root)
        if kind == "field":
            base = root if val.startswith("$") else dot
            path = val.lstrip("$")
            if path == ".":
                return base
            cur = base
            for part in path.strip(".").split("."):
                if part == "":
                    continue
                cur = cur.get(part) if isinstance(cur, dict) else None
            return cur
        if kind == "ident":
            return self.call(val, [], dot, root)
        raise TemplateError(f"unexpected {kind}")

    def pipeline(self, cmds, dot, root):
        value, have = None, False
        for cmd in cmds:
            if not cmd:
                raise TemplateError("empty command in pipeline")
            if cmd[0][0] == "ident":
                args = [self.operand(a, dot, root) for a in cmd[1:]]
                if have:
                    args.append(value)
                value = self.call(cmd[0][1], args, dot, root)
            else:
                if len(cmd) != 1 or have:
                    raise TemplateError(f"cannot call a non-function {cmd}")
                value = self.operand(cmd[0], dot, root)
            have = True
        return value

    def call(self, fn, a, dot, root):
        if fn == "include":
            if a[0] not in self.defines:
                raise TemplateError(f"include of undefined template {a[0]!r}")
            return self.render(self.defines[a[0]], a[1], a[1])
        funcs = {
            "quote": lambda v: go_quote(v),
            "toYaml": lambda v: to_yaml(v),
            "toJson": lambda v: __import__("json").dumps(v, separators=(",", ":")),
            "nindent": lambda k, s: "\n" + "\n".join(" " * int(k) + ln if ln else ln
                                                     for ln in str(s).split("\n")),
            "indent": lambda k, s: "\n".join(" " * int(k) + ln if ln else ln
                                             for ln in str(s).split("\n")),
            "default": lambda d, v=None: v if truthy(v) else d,
            "required": lambda msg, v=None: v if truthy(v) else (_ for _ in ()).throw(Fail(msg)),
            "fail": lambda msg: (_ for _ in ()).throw(Fail(msg)),
            "int": lambda v: int(float(v)) if v not in (None, "") else 0,
            "printf": go_printf,
            "print": lambda *v: "".join(go_str(x) for x in v),
            "trunc": lambda k, s: str(s)[:int(k)],
            "trimSuffix": lambda suf, s: str(s)[:-len(suf)] if suf and str(s).endswith(suf)
            else str(s),
            "dict": lambda *kv: {kv[i]: kv[i + 1] for i in range(0, len(kv), 2)},
            "index": lambda m, *ks: __import__("functools").reduce(
                lambda c, k: c.get(k) if isinstance(c, dict) else None, ks, m),
            "eq": lambda x, y: x == y,
            "ne": lambda x, y: x != y,
            "le": lambda x, y: x <= y,
            "lt": lambda x, y: x < y,
            "not": lambda v: not truthy(v),
            "and": lambda *v: next((x for x in v if not truthy(x)), v[-1]),
            "or": lambda *v: next((x for x in v if truthy(x)), v[-1]),
            "empty": lambda v: not truthy(v),
            "lower": lambda s: str(s).lower(),
            "upper": lambda s: str(s).upper(),
        }
        if fn not in funcs:
            raise TemplateError(f"function {fn!r} is outside the supported template subset")
        return funcs[fn](*a)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def rel(path):
    return os.path.relpath(path, SRC)


def parse_duration(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", str(s))
    if not m:
        return None
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def port_of(listen):
    m = re.fullmatch(r"(\[[^\]]*\]|[^:]*):(\d+)", str(listen))
    return (m.group(1).strip("[]"), int(m.group(2))) if m else (None, None)


def env_refs(text):
    """-> {VAR: has_default} for every ${VAR} / ${VAR:-default} in a config text."""
    refs = {}
    for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", text):
        refs[m.group(1)] = refs.get(m.group(1), True) and m.group(2) is not None
    return refs


def run_check(where, text, env_vars):
    """Runs clerk-m2m-proxy --check on a config text; env_vars: name -> value."""
    env = {k: v for k, v in os.environ.items() if k not in env_refs(text)}
    env.update(env_vars)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="deploy-check-",
                                     delete=False) as f:
        f.write(text)
        path = f.name
    try:
        p = subprocess.run([BIN, "--check", "--config", path], env=env, capture_output=True,
                           text=True, timeout=60)
    finally:
        os.unlink(path)
    out = (p.stdout + p.stderr).strip().replace(path, "<config>")
    R.check(p.returncode == 0 and "config ok" in p.stdout, where,
            "clerk-m2m-proxy --check: config ok",
            f"clerk-m2m-proxy --check exit {p.returncode}: {out}")


def fake_env_for(text, provided=None):
    """Fake values: for `provided` names (the container's env) or every variable without a
    default plus the Clerk keys (examples)."""
    refs = env_refs(text)
    names = provided if provided is not None else [
        v for v, has_default in refs.items() if not has_default or v in FAKE_ENV]
    return {n: FAKE_ENV.get(n, "fake-validation-value") for n in names}


# ----------------------------------------------------------------------------------------------
# Kubernetes checks
# ----------------------------------------------------------------------------------------------
def pod_spec(doc):
    return (((doc.get("spec") or {}).get("template") or {}).get("spec")) or {}


def find_proxy(spec):
    for c in spec.get("containers") or []:
        if c.get("name") == PROXY_CONTAINER:
            return c, False
    for c in spec.get("initContainers") or []:
        if c.get("name") == PROXY_CONTAINER:
            return c, True
    return None, False


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def prestop_seconds(c):
    pre = ((c.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return int(pre["sleep"].get("seconds", 0))
    cmd = (pre.get("exec") or {}).get("command") or []
    for i, w in enumerate(cmd):
        if str(w).endswith("sleep") and i + 1 < len(cmd):
            return float(cmd[i + 1])
        m = re.search(r"sleep\s+(\d+)", str(w))
        if m:
            return float(m.group(1))
    return 0


def config_path_of(c):
    args = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    for e in c.get("env") or []:
        if e.get("name") == "CLERK_M2M_PROXY_CONFIG" and "value" in e and not args:
            return e["value"]
    return IMAGE_CONFIG_PATH


def check_deployment(where, dep, configmaps, secrets, services):
    name = f"{where} Deployment/{dep['metadata']['name']}"
    spec = pod_spec(dep)
    c, is_init = find_proxy(spec)
    if not R.check(c is not None, name, f"has a container named {PROXY_CONTAINER}"):
        return
    if is_init:
        R.check(c.get("restartPolicy") == "Always", name,
                "proxy initContainer has restartPolicy: Always (native sidecar)")
    R.check(PROXY_CONTAINER in str(c.get("image", "")), name, "proxy image is clerk-m2m-proxy",
            f"proxy image {c.get('image')!r} does not look like clerk-m2m-proxy")

    # the config: a ConfigMap mounted as a directory holding the --config path
    cfg_path = config_path_of(c)
    vols = {v.get("name"): v for v in spec.get("volumes") or []}
    cm_text, cm_name = None, None
    for m in c.get("volumeMounts") or []:
        mp = m.get("mountPath", "").rstrip("/")
        if cfg_path.startswith(mp + "/"):
            R.check("subPath" not in m, name, f"config volume {m.get('name')} mounted without "
                    "subPath (ConfigMap updates reach the file)",
                    f"config volume {m.get('name')} uses subPath: ConfigMap updates never "
                    "reach the proxy")
            vol = vols.get(m.get("name")) or {}
            cm_name = (vol.get("configMap") or {}).get("name")
            key = cfg_path[len(mp) + 1:]
            cm = configmaps.get(cm_name)
            if cm is not None:
                cm_text = (cm.get("data") or {}).get(key)
            R.check(cm_text is not None, name,
                    f"{cfg_path} comes from ConfigMap {cm_name} key {key}",
                    f"{cfg_path}: no ConfigMap {cm_name!r} with key {key!r} found")
    if cm_text is None:
        R.fail(name, f"no volumeMount provides the config file {cfg_path}")
        return

    # env: what the container provides; every ${VAR} without default must be provided
    provided = [e["name"] for e in c.get("env") or []]
    missing = [v for v, d in env_refs(cm_text).items() if not d and v not in provided]
    R.check(not missing, name, "container env provides every ${VAR} the config needs",
            f"config needs {missing} but the proxy container does not set them")
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref.get("name") in secrets:
            s = secrets[ref["name"]]
            keys = set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
            R.check(ref.get("key") in keys or ref.get("optional"), name,
                    f"env {e['name']} -> Secret {ref['name']} key {ref.get('key')} exists",
                    f"env {e['name']}: Secret {ref['name']} has no key {ref.get('key')}")
    run_check(f"{name} (ConfigMap {cm_name})", cm_text,
              fake_env_for(cm_text, provided=[n for n in provided
                                               if n in env_refs(cm_text)]))

    try:
        cfg = yaml.safe_load(cm_text) or {}
    except yaml.YAMLError as e:
        R.fail(name, f"embedded config does not parse: {e}")
        return
    lhost, lport = port_of(cfg.get("listen", "0.0.0.0:8080"))
    ahost, aport = port_of((cfg.get("admin") or {}).get("listen", "127.0.0.1:9901"))
    R.check(aport is not None and ahost not in ("127.0.0.1", "localhost", "::1"), name,
            f"admin.listen {ahost}:{aport} is reachable by the kubelet",
            f"admin.listen must not be loopback or disabled in a pod (probes reach the pod IP), "
            f"got {(cfg.get('admin') or {}).get('listen')!r}")
    cports = [p.get("containerPort") for p in c.get("ports") or []]
    R.check(lport in cports, name, f"containerPort {lport} matches listen",
            f"listen port {lport} is not a containerPort of the proxy ({cports})")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = (c.get(probe) or {}).get("httpGet")
        if not R.check(hg is not None, name, f"{probe} present", f"{probe} (httpGet) missing"):
            continue
        p = resolve_port(c, hg.get("port"))
        R.check(hg.get("path") == path and p == aport, name,
                f"{probe} GET {path} on admin port {aport}",
                f"{probe} is {hg.get('path')} on port {hg.get('port')} ({p}); want {path} on "
                f"admin port {aport}")
    if c.get("startupProbe"):
        hg = c["startupProbe"].get("httpGet") or {}
        R.check(hg.get("path") in ("/healthz", "/readyz") and resolve_port(c, hg.get("port"))
                == aport, name, "startupProbe on the admin port", "startupProbe must hit "
                "/readyz or /healthz on the admin port")

    drain = parse_duration((cfg.get("shutdown") or {}).get("drain_timeout", "15s"))
    pre = prestop_seconds(c)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    R.check(pre > 0, name, f"proxy preStop sleeps {pre:g}s", "proxy has no preStop sleep")
    R.check(drain is not None and grace > pre + drain, name,
            f"terminationGracePeriodSeconds {grace} > preStop {pre:g}s + drain_timeout {drain:g}s",
            f"terminationGracePeriodSeconds {grace} must exceed preStop {pre:g}s + "
            f"drain_timeout {drain}s")

    sc = dict(spec.get("securityContext") or {})
    sc.update(c.get("securityContext") or {})
    problems = []
    if sc.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot: true")
    if not isinstance(sc.get("runAsUser"), int) or sc.get("runAsUser") == 0:
        problems.append("runAsUser non-zero (65532)")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation: false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem: true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities.drop [ALL]")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("seccompProfile RuntimeDefault")
    R.check(not problems, name, "proxy securityContext locked down",
            "proxy securityContext lacks " + ", ".join(problems))
    res = c.get("resources") or {}
    R.check(all(k in (res.get("requests") or {}) for k in ("cpu", "memory"))
            and "memory" in (res.get("limits") or {}), name,
            "proxy resources: cpu/memory requests and a memory limit",
            f"proxy resources incomplete: {res}")

    labels = ((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    for svc_where, svc in services:
        sel = (svc.get("spec") or {}).get("selector") or {}
        if sel and all(labels.get(k) == v for k, v in sel.items()):
            for sp in (svc["spec"].get("ports") or []):
                tp = resolve_port(c, sp.get("targetPort", sp.get("port")))
                R.check(tp == lport, f"{svc_where} Service/{svc['metadata']['name']}",
                        f"targetPort {sp.get('targetPort')} -> proxy listen port {lport}",
                        f"targetPort {sp.get('targetPort')} ({tp}) is not the proxy's listen "
                        f"port {lport}")


# Every Kubernetes object checked here (manifests and rendered chart variants), for the schema
# section: [(where, object)].
SCHEMA_OBJECTS = []


def check_manifest_set(where, docs, services=None):
    by_kind = {}
    for d in docs:
        if isinstance(d, dict) and d.get("kind"):
            by_kind.setdefault(d["kind"], []).append(d)
            SCHEMA_OBJECTS.append((where, d))
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    for d in by_kind.get("Deployment", []):
        check_deployment(where, d, cms, secrets, services or [])
    return by_kind


# ----------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------
def load_yaml_file(path):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        R.ok(rel(path), f"parses ({len(docs)} document(s))")
        return docs
    except (yaml.YAMLError, OSError) as e:
        R.fail(rel(path), f"YAML does not parse: {e}")
        return None


def section_examples():
    d = os.path.join(SRC, "deploy", "examples")
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if fn.endswith((".yaml", ".yml")):
            path = os.path.join(d, fn)
            if load_yaml_file(path) is None:
                continue
            text = open(path).read()
            run_check(rel(path), text, fake_env_for(text))


def section_gateways():
    """The README's nginx and Caddy configs are the files the forward-auth tests run."""
    readme = open(os.path.join(SRC, "README.md")).read()
    d = os.path.join(SRC, "docs", "gateways")
    for fn in ("nginx.conf", "Caddyfile"):
        path = os.path.join(d, fn)
        R.check(os.path.exists(path) and open(path).read() in readme, rel(path),
                "appears verbatim in README.md")


def section_kubernetes():
    d = os.path.join(SRC, "deploy", "kubernetes")
    files = sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")))
    parsed = {}
    for fn in files:
        docs = load_yaml_file(os.path.join(d, fn))
        if docs is not None:
            parsed[fn] = docs
    services = [(f"deploy/kubernetes/{fn}", doc) for fn, docs in parsed.items()
                for doc in docs if doc.get("kind") == "Service"]
    for fn, docs in parsed.items():
        where = f"deploy/kubernetes/{fn}"
        kinds = check_manifest_set(where, docs, services)
        for s in kinds.get("Secret", []):
            vals = list((s.get("stringData") or {}).values())
            R.check(vals and all("placeholder" in str(v).lower() for v in vals), where,
                    f"Secret/{s['metadata']['name']} holds only placeholder values",
                    f"Secret/{s['metadata']['name']} must hold only obvious placeholders")
        for np_ in kinds.get("NetworkPolicy", []):
            ports = sorted(p.get("port") for r in np_["spec"].get("ingress") or []
                           for p in r.get("ports") or [])
            R.check(ports == [8080, 9901], where, "NetworkPolicy admits only 8080 and 9901",
                    f"NetworkPolicy ingress ports {ports}, want [8080, 9901]")
    for fn in ("sidecar.yaml", "service.yaml", "networkpolicy.yaml", "native-sidecar.yaml"):
        R.check(fn in parsed, "deploy/kubernetes", f"{fn} present", f"{fn} missing")
    native = parsed.get("native-sidecar.yaml") or []
    R.check(any(find_proxy(pod_spec(x))[1] for x in native if x.get("kind") == "Deployment"),
            "deploy/kubernetes/native-sidecar.yaml", "proxy is an initContainer",
            "proxy must be an initContainer (restartPolicy: Always)")


def values_paths_exist(values, path):
    cur = values
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


PARENT_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: parent-app
spec:
  selector:
    matchLabels: {app: parent-app}
  template:
    metadata:
      labels: {app: parent-app}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: app
          image: registry.example.com/parent-app:1.0.0
        {{- include "clerk-m2m-proxy.sidecar" (dict "Values" (index .Values "clerk-m2m-proxy") "Release" .Release) | nindent 8 }}
      volumes:
        {{- include "clerk-m2m-proxy.sidecarVolumes" (dict "Values" (index .Values "clerk-m2m-proxy") "Release" .Release) | nindent 8 }}
"""


def section_helm():
    chart = os.path.join(SRC, "deploy", "helm", "clerk-m2m-proxy")
    where = rel(chart)
    if not R.check(os.path.isdir(chart), where, "chart present", "chart directory missing"):
        return
    meta = (load_yaml_file(os.path.join(chart, "Chart.yaml")) or [{}])[0]
    R.check(meta.get("apiVersion") == "v2" and meta.get("name") == "clerk-m2m-proxy"
            and meta.get("version"), where, "Chart.yaml: apiVersion v2, name, version")
    values = (load_yaml_file(os.path.join(chart, "values.yaml")) or [{}])[0]
    tdir = os.path.join(chart, "templates")
    sources = {fn: open(os.path.join(tdir, fn)).read() for fn in sorted(os.listdir(tdir))
               if fn.endswith((".yaml", ".yml", ".tpl")) or fn == "NOTES.txt"}
    for fn in ("_helpers.tpl", "_sidecar.tpl", "configmap.yaml", "deployment.yaml",
               "service.yaml", "NOTES.txt"):
        R.check(fn in sources, where, f"templates/{fn} present", f"templates/{fn} missing")
    R.check(os.path.exists(os.path.join(chart, "README.md")), where, "README.md present")

    # every .Values.x.y referenced exists in values.yaml (comments stripped)
    for fn, src in sources.items():
        code = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", src, flags=re.S)  # comments
        refs = sorted(set(re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", code)))
        bad = [r for r in refs if not values_paths_exist(values, r.strip(".").split("."))]
        R.check(not bad, f"{where}/templates/{fn}",
                f"all {len(refs)} .Values references exist in values.yaml",
                f".Values references missing from values.yaml: {bad}")

    engine = Engine()
    parsed = {}
    try:
        for fn, src in sources.items():
            parsed[fn] = engine.load(src, fn)
        R.ok(f"{where}/templates", "templates parse (Go-template subset)")
    except TemplateError as e:
        R.fail(f"{where}/templates", f"template does not parse: {e}")
        return

    def render_all(over, label):
        ctx = {"Values": merge(values, over),
               "Release": {"Name": "rel", "Namespace": "default", "Service": "Helm"},
               "Chart": {"Name": meta.get("name"), "Version": meta.get("version"),
                         "AppVersion": meta.get("appVersion")},
               "Capabilities": {}, "Template": {}}
        docs, notes = [], ""
        for fn, nodes in parsed.items():
            if fn.startswith("_"):
                continue
            text = engine.render(nodes, ctx, ctx)
            if fn == "NOTES.txt":
                notes = text
                continue
            try:
                docs += [d for d in yaml.safe_load_all(text) if d is not None]
            except yaml.YAMLError as e:
                raise TemplateError(f"templates/{fn} ({label}) renders invalid YAML: {e}\n{text}")
        return docs, notes, ctx

    # defaults alone: no key source -> a clear failure at install time
    try:
        render_all({}, "defaults")
        R.fail(where, "defaults without any key source should fail to render")
    except Fail as e:
        R.check("existingSecret" in str(e), where, f"defaults without keys fail clearly: {e}")
    except TemplateError as e:
        R.fail(where, f"render (defaults): {e}")
    try:
        render_all({"mode": "bogus", "clerk": {"existingSecret": "x"}}, "bad mode")
        R.fail(where, "mode: bogus should fail to render")
    except Fail as e:
        R.ok(where, f"mode: bogus fails clearly: {e}")
    except TemplateError as e:
        R.fail(where, f"render (bad mode): {e}")

    scenarios = [
        ("gateway, existingSecret", {"clerk": {"existingSecret": "my-clerk-keys"},
                                     "upstream": {"url": "http://legacy.example.svc:8080"}}),
        ("gateway, shared cache", {"clerk": {"existingSecret": "my-clerk-keys"},
                                   "cache": {"sharedRedis": {"secretName": "my-redis"}}}),
        ("gateway, chart-made Secret", {"clerk": {"machineSecretKey": "ak_fake_placeholder"},
                                        "headers": {"claimsToHeaders": {"tenant": "X-Tenant-Id"}},
                                        "podAnnotations": {"a": "b"}}),
        ("sidecar", {"mode": "sidecar", "clerk": {"existingSecret": "my-clerk-keys"}}),
    ]
    for label, over in scenarios:
        w = f"{where} [{label}]"
        try:
            docs, notes, ctx = render_all(over, label)
        except TemplateError as e:
            R.fail(w, f"render: {e}")
            continue
        kinds = sorted(d.get("kind") for d in docs)
        want = (["ConfigMap"] if ctx["Values"]["mode"] == "sidecar" else
                ["ConfigMap", "Deployment", "Service"])
        if not ctx["Values"]["clerk"].get("existingSecret"):
            want = sorted(want + ["Secret"])
        R.check(kinds == want, w, f"renders {kinds}", f"renders {kinds}, want {want}")
        R.check("<no value>" not in notes and notes.strip(), w, "NOTES.txt renders",
                f"NOTES.txt renders badly: {notes!r}")
        services = [(w, d) for d in docs if d.get("kind") == "Service"]
        if ctx["Values"]["mode"] == "sidecar":
            # the documented include, in a parent chart's Deployment
            pctx = {"Values": {"clerk-m2m-proxy": ctx["Values"]}, "Release": ctx["Release"]}
            try:
                ptext = engine.render(engine.load(PARENT_TEMPLATE, "parent"), pctx, pctx)
                docs = docs + [d for d in yaml.safe_load_all(ptext) if d]
                R.ok(w, "sidecar include renders in a parent chart")
            except (TemplateError, yaml.YAMLError) as e:
                R.fail(w, f"sidecar include: {e}")
                continue
        check_manifest_set(w, docs, services)


def section_dockerfile():
    path = os.path.join(SRC, "docker", "Dockerfile")
    where = rel(path)
    if not R.check(os.path.exists(path), where, "present", "docker/Dockerfile missing"):
        return
    lines, cur = [], ""
    for raw in open(path).read().splitlines():
        s = raw.strip()
        if s.startswith("#") and not cur:
            continue
        if s.startswith("#"):
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            if cur:
                lines.append(cur)
            cur = ""
    stages, insns = [], []
    for ln in lines:
        word, _, rest = ln.partition(" ")
        insns.append((word.upper(), rest.strip()))
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    if not R.check(len(stages) >= 2, where, f"multi-stage ({len(stages)} stages)"):
        return
    build, runtime = stages[0], stages[-1]

    def apt_packages(stage):
        pkgs = []
        for w, rest in stage:
            if w != "RUN":
                continue
            for part in re.split(r"&&|;", rest):
                toks = part.split()
                if "apt-get" in toks and "install" in toks:
                    pkgs += [t for t in toks[toks.index("install") + 1:] if not t.startswith("-")]
        return pkgs

    R.check(build[0][1].split()[0] == "debian:bookworm", where, "build stage FROM debian:bookworm")
    R.check(runtime[0][1].split()[0] == "debian:bookworm-slim", where,
            "runtime stage FROM debian:bookworm-slim")
    build_text = " ".join(r for w, r in build if w == "RUN")
    R.check("-DCLERK_BUILD_TESTS=OFF" in build_text and re.search(
        r"(ninja|--target)[^&]*\bclerk-m2m-proxy\b", build_text), where,
        "build stage builds only clerk-m2m-proxy with -DCLERK_BUILD_TESTS=OFF")
    want_build = {"g++", "cmake", "ninja-build", "libboost1.81-dev", "libssl-dev",
                  "nlohmann-json3-dev", "libspdlog-dev", "libyaml-cpp-dev", "libhiredis-dev", "libnghttp2-dev",
                  "pkg-config"}
    got_build = set(apt_packages(build))
    R.check(got_build == want_build, where, f"build stage installs {sorted(got_build)}",
            f"build stage installs {sorted(got_build)}, want exactly {sorted(want_build)}")
    deps_sh = open(os.path.join(SRC, "scripts", "install-deps.sh")).read()
    m = re.search(r"build\)\s*want\+=\((.*?)\)", deps_sh, re.S)
    build_group = set(m.group(1).split()) if m else set()
    R.check(got_build <= build_group, where, "build deps agree with install-deps.sh build group",
            f"not in install-deps.sh build group: {sorted(got_build - build_group)}")

    runtime_pkgs = set(apt_packages(runtime))
    user = next((r for w, r in reversed(runtime) if w == "USER"), "")
    uid = user.split(":")[0]
    R.check(uid.isdigit() and int(uid) != 0, where, f"runtime USER {user} is numeric non-root",
            f"runtime USER must be a numeric non-root uid, got {user!r}")
    exposed = set(" ".join(r for w, r in runtime if w == "EXPOSE").split())
    R.check({"8080", "9901"} <= exposed, where, "EXPOSE 8080 9901",
            f"EXPOSE {sorted(exposed)}, want 8080 and 9901")
    R.check(not any(w == "HEALTHCHECK" for w, _ in insns), where, "no HEALTHCHECK")
    ep = next((r for w, r in reversed(runtime) if w == "ENTRYPOINT"), "")
    try:
        import json
        ep_list = json.loads(ep)
    except ValueError:
        ep_list = []
    R.check(len(ep_list) >= 3 and ep_list[0].endswith("/clerk-m2m-proxy")
            and ep_list[1:3] == ["--config", IMAGE_CONFIG_PATH], where,
            f"ENTRYPOINT {ep_list}", f"ENTRYPOINT must be exec-form [binary, --config, "
            f"{IMAGE_CONFIG_PATH}], got {ep!r}")
    copies = " ".join(r for w, r in runtime if w == "COPY")
    R.check(ep_list and ep_list[0] in copies, where, "runtime stage copies the binary to the "
            "ENTRYPOINT path", f"no COPY puts the binary at {ep_list[:1]}")

    # ldd of the real binary -> Debian packages
    try:
        ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=60).stdout
    except OSError as e:
        R.fail(where, f"cannot run ldd: {e}")
        return
    libs = []
    for ln in ldd.splitlines():
        ln = ln.strip()
        m = re.match(r"(\S+)\s+=>\s+(\S+)\s+\(", ln) or re.match(r"(/\S+)\s+\(", ln)
        if not m:
            continue
        if "not found" in ln:
            R.fail(where, f"ldd: {ln}")
            continue
        libs.append(m.group(m.lastindex))
    needed, ignored = {}, []
    for lib in libs:
        if os.path.basename(lib).startswith(SANITIZER_LIBS):
            ignored.append(os.path.basename(lib))
            continue
        pkg = dpkg_owner(lib)
        if pkg is None:
            R.fail(where, f"no Debian package owns {lib} (dpkg -S)")
            continue
        needed.setdefault(pkg, []).append(os.path.basename(lib))
    if ignored:
        print(f"note {where}: ignoring sanitizer runtimes of this build: {', '.join(ignored)}")
    missing = {p: l for p, l in needed.items() if p not in runtime_pkgs}
    R.check(libs and not missing, where,
            "runtime stage installs every package ldd needs: " +
            ", ".join(f"{p} ({' '.join(sorted(set(l)))})" for p, l in sorted(needed.items())),
            f"runtime stage does not install {missing} (found by ldd + dpkg -S on {BIN})")
    extra = runtime_pkgs - set(needed) - {"ca-certificates"}
    R.check(not extra, where, "runtime stage installs nothing else besides ca-certificates",
            f"runtime stage installs packages the binary does not link: {sorted(extra)}")
    R.check("ca-certificates" in runtime_pkgs, where, "runtime stage installs ca-certificates")

    ign = os.path.join(SRC, ".dockerignore")
    if R.check(os.path.exists(ign), ".dockerignore", "present"):
        entries = open(ign).read().split()
        R.check(all(any(e.strip("/*").startswith(x) for e in entries) for x in
                    (".git", "build", "node_modules")) or
                all(any(x in e for e in entries) for x in (".git", "build", "node_modules")),
                ".dockerignore", "ignores .git, build dirs and node_modules")


K8S_MODELS_VERSION = "5.1.0"


def k8s_models_dir():
    """kubernetes-models, installed once per cache directory (like the contract test's SDK)."""
    cache = os.environ.get("CLERK_K8S_MODELS_CACHE") or os.path.join(
        os.environ.get("HOME") or tempfile.gettempdir(), ".cache", "clerk-m2m-proxy", "k8s-models")
    pkg = os.path.join(cache, "node_modules", "kubernetes-models")
    try:
        import json as _json
        with open(os.path.join(pkg, "package.json")) as f:
            if _json.load(f).get("version") == K8S_MODELS_VERSION:
                return pkg
    except (OSError, ValueError):
        pass
    os.makedirs(cache, exist_ok=True)
    if not os.path.exists(os.path.join(cache, "package.json")):
        with open(os.path.join(cache, "package.json"), "w") as f:
            f.write('{"name":"clerk-m2m-proxy-k8s-models","private":true}\n')
    subprocess.run(["npm", "install", "--prefix", cache, "--no-audit", "--no-fund",
                    "--loglevel=error", f"kubernetes-models@{K8S_MODELS_VERSION}"],
                   check=True, capture_output=True, text=True, timeout=600)
    return pkg


def section_schemas():
    """Every manifest and rendered chart object against the Kubernetes OpenAPI schemas
    (kubernetes-models), plus a known-bad object that must be refused (the validator is live)."""
    import json as _json
    where = "kubernetes schemas (kubernetes-models %s)" % K8S_MODELS_VERSION
    try:
        models = k8s_models_dir()
    except (OSError, subprocess.SubprocessError) as e:
        R.fail(where, f"cannot install kubernetes-models (npm): {e}")
        return
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i",
                                                          "ports": [{"containerPort": "8080"}]}]}}}}
    items = [{"where": w, "object": o} for w, o in SCHEMA_OBJECTS]
    items.append({"where": "self-test", "object": bad})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        _json.dump(items, f)
        path = f.name
    try:
        p = subprocess.run(["node", os.path.join(SRC, "tests", "deploy", "k8s_schema.mjs"), models,
                            path], capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    lines = [_json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    if not R.check(p.returncode == 0 and len(lines) == len(items), where, "validator ran",
                   f"validator failed: {p.stderr[-2000:]}"):
        return
    for line in lines:
        if line["where"] == "self-test":
            R.check(not line["ok"], where, "refuses a Deployment with a string containerPort",
                    "accepted a Deployment with a string containerPort: the validator is not live")
        else:
            R.check(line["ok"], line["where"], f"{line['kind']} matches the Kubernetes schema",
                    f"{line['kind']} does not match the Kubernetes schema: {line.get('error')}")


def dpkg_owner(lib):
    cands = [lib, os.path.realpath(lib)]
    for c in list(cands):
        if c.startswith("/usr/"):
            cands.append(c[4:])
        else:
            cands.append("/usr" + c)
    for c in cands:
        try:
            p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True, timeout=60)
        except OSError:
            return None
        if p.returncode == 0 and p.stdout.strip():
            first = p.stdout.strip().splitlines()[0]
            return first.split(":")[0].split(",")[0].strip()
    return None


def main():
    global BIN, SRC
    if len(sys.argv) != 3:
        print("usage: validate.py PROXY_BINARY SOURCE_DIR")
        return 2
    BIN, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if not os.access(BIN, os.X_OK):
        R.fail(BIN, "proxy binary not found or not executable")
    else:
        for section in (section_examples, section_gateways, section_kubernetes, section_helm,
                        section_dockerfile, section_schemas):
            try:
                section()
            except Exception as e:  # a crash in one section must not hide the others
                R.fail(section.__name__, f"validator error: {type(e).__name__}: {e}")
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
