#!/usr/bin/env bash
# Install and package, checked without installing anything system-wide:
#  - `cmake --install` into a DESTDIR temp folder: the layout, the carried libnode found
#    through the rpath, the installed binary running a job from another directory with the
#    installed policies;
#  - `systemd-analyze verify` on the installed units (skipped, with a message, when absent);
#  - socket activation (systemd-socket-activate passes a listener; serve answers on it);
#  - the .deb built by CPack into a temp folder: contents, conffiles, maintainer scripts.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR ETC_DIR HELLO_WASM
set -euo pipefail
build=$1 src=$2 etc=$3 hello=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wj-package-test.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { [[ -e $1 ]] || fail "missing $1"; }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
dest=$tmp/root
DESTDIR=$dest cmake --install "$build" >/dev/null
bin=$dest$prefix/bin/wasmjail
check "$bin"
check "$dest$etc/policies/default.yaml"
check "$dest$etc/policies/strict.yaml"
check "$dest$etc/server.yaml"
check "$dest$prefix/lib/systemd/system/wasmjail.service"
check "$dest$prefix/lib/systemd/system/wasmjail.socket"
check "$dest$prefix/share/doc/wasmjail/README.md"
check "$dest$prefix/share/doc/wasmjail/openapi.json"
check "$dest$prefix/share/doc/wasmjail/examples/server.yaml"
[[ ! -e $dest$prefix/bin/wasmjail_probe ]] || fail "the test-only probe binary was installed"
if ! grep -q '^WJ_SYSTEM_V8:[A-Z]*=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  check "$dest$prefix/lib/wasmjail/libnode.so.108"
  ldd "$bin" | grep -q "libnode.so.108 => $dest$prefix/bin/../lib/wasmjail/libnode.so.108" \
    || fail "installed binary does not load the carried libnode: $(ldd "$bin" | grep libnode)"
  readelf -d "$bin" | grep -q 'R.*PATH.*\$ORIGIN/../lib/wasmjail' || fail "no \$ORIGIN rpath: $(readelf -d "$bin" | grep PATH)"
fi

# The installed binary, from another directory, with the installed policies.
mkdir -p "$tmp/elsewhere" && cp "$hello" "$tmp/elsewhere/hello.wasm"
out=$(cd "$tmp/elsewhere" && "$bin" run --policy-dir "$dest$etc/policies" --policy default hello.wasm installed)
[[ $out == *"Hello, installed!"* ]] || fail "installed run printed: $out"
shown=$(cd "$tmp/elsewhere" && WASMJAIL_POLICY_PATH="$dest$etc/policies" "$bin" policy show strict)
[[ $shown == *"$dest$etc/policies/strict.yaml"* ]] || fail "policy show did not use the installed strict.yaml: $shown"
# An installed binary never falls back on the source tree; without /etc/wasmjail it says where it looked.
if [[ ! -d $etc/policies ]]; then
  if err=$(cd "$tmp/elsewhere" && "$bin" run hello.wasm 2>&1); then fail "ran without any policy: $err"; fi
  [[ $err == *"$etc/policies"* && $err != *"$src/configs"* ]] || fail "unexpected lookup: $err"
fi
"$bin" --version | grep -q '^wasmjail .* (commit ' || fail "--version: $("$bin" --version)"
"$bin" --version | grep -q '^V8 10\.' || fail "--version lacks V8"

# The service's restrictions, emulated without systemd (this machine has no systemd as
# pid 1): a read-only file system (ProtectSystem=strict), no new privileges
# (NoNewPrivileges=yes), no capabilities (CapabilityBoundingSet=, AmbientCapabilities=), an
# unprivileged user (User=). The job must still get every namespace, Landlock and seccomp.
if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null && command -v setpriv >/dev/null; then
  chmod 755 "$tmp" && chmod -R a+rX "$dest" "$tmp/elsewhere"
  printf '{"entry_module": {"source_path": "hello.wasm"}, "parameters": ["hardened"]}' > "$tmp/elsewhere/job.json"
  chmod a+r "$tmp/elsewhere/job.json"
  res=$(cd "$tmp/elsewhere" && unshare --mount --propagation private sh -c '
      mount -o remount,bind,ro / || exit 3
      if touch /.wj-rw-check 2>/dev/null; then rm -f /.wj-rw-check; exit 4; fi
      exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all --ambient-caps=-all \
        --reuid=nobody --regid=nogroup --clear-groups env WASMJAIL_CACHE_DIR=off \
        "$0" exec --policy-dir "$1" job.json' "$bin" "$dest$etc/policies") || true
  python3 - "$res" <<'PY' || fail "the sandbox under the service's restrictions: $res"
import json, sys
r = json.loads(sys.argv[1])
applied = set(r["sandbox"]["applied"])
need = {"user_ns", "pid_ns", "net_ns", "ipc_ns", "uts_ns", "mount_ns", "seccomp", "capabilities"}
assert r["status"] == "ok" and r["stdout"] == "Hello, hardened!\n", r
assert need <= applied, ("not applied", need - applied)
PY
else
  echo "SKIP: not root (or no unshare/setpriv): the service's restrictions were not emulated" >&2
fi

# systemd-analyze verify on the installed units. verify checks that ExecStart's binary
# exists, and nothing is installed system-wide: copies whose only change is that path.
if command -v systemd-analyze >/dev/null; then
  units=$tmp/units
  mkdir -p "$units"
  cp "$dest$prefix/lib/systemd/system/wasmjail.socket" "$units/"
  # The unit names the package's /usr/bin/wasmjail whatever this build's prefix.
  sed "s|^ExecStart=/usr/bin/wasmjail |ExecStart=$bin |" "$dest$prefix/lib/systemd/system/wasmjail.service" > "$units/wasmjail.service"
  grep -q "^ExecStart=$bin serve" "$units/wasmjail.service" || fail "unexpected ExecStart in wasmjail.service"
  if ! v=$(systemd-analyze verify "$units/wasmjail.socket" "$units/wasmjail.service" 2>&1); then
    fail "systemd-analyze verify: $v"
  fi
  [[ -z $v ]] || fail "systemd-analyze verify warned: $v"
  grep -q '^Delegate=yes' "$units/wasmjail.service" || fail "wasmjail.service lacks Delegate=yes"
else
  echo "SKIP: systemd-analyze is not installed; the units were not verified" >&2
fi

# Socket activation: systemd-socket-activate (from systemd) passes a listening socket the
# way the .socket unit does; serve must answer on it without binding its own.
if command -v systemd-socket-activate >/dev/null; then
  printf 'output_root: %s/outputs\nlisten: [unix:%s/not-used.sock]\npolicy_dirs: [%s]\n' "$tmp" "$tmp" "$dest$etc/policies" > "$tmp/server.yaml"
  systemd-socket-activate -l "$tmp/activated.sock" "$bin" serve --config "$tmp/server.yaml" 2>"$tmp/serve.log" &
  pids+=($!)
  for _ in $(seq 100); do [[ -S $tmp/activated.sock ]] && break; sleep 0.05; done
  health=$(curl -s --max-time 30 --unix-socket "$tmp/activated.sock" http://wasmjail/healthz || true)
  [[ $health == *'"status":"ok"'* ]] || fail "socket-activated serve answered: $health $(cat "$tmp/serve.log")"
  [[ ! -e $tmp/not-used.sock ]] || fail "serve bound the config's listener although systemd passed one"
  grep -q '"from":"systemd"' "$tmp/serve.log" || fail "serve did not log the inherited listener: $(cat "$tmp/serve.log")"
else
  echo "SKIP: systemd-socket-activate is not installed; socket activation not exercised" >&2
fi

# The .deb, built into a temp folder from this build's CPack config.
(cd "$build" && cpack -G DEB -B "$tmp/deb" >/dev/null) || fail "cpack failed"
deb=$(ls "$tmp"/deb/wasmjail_*_amd64.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/wasmjail ./etc/wasmjail/policies/default.yaml ./etc/wasmjail/server.yaml \
         ./usr/lib/systemd/system/wasmjail.service ./usr/lib/systemd/system/wasmjail.socket \
         ./usr/share/doc/wasmjail/openapi.json; do
  grep -q " $f\$" <<<"$contents" || fail "$f not in the package"
done
dpkg-deb -e "$deb" "$tmp/control"
for f in /etc/wasmjail/server.yaml /etc/wasmjail/policies/default.yaml /etc/wasmjail/policies/strict.yaml; do
  grep -qx "$f" "$tmp/control/conffiles" || fail "$f is not a conffile"
done
grep -q 'adduser --system' "$tmp/control/postinst" || fail "postinst does not create the wasmjail user"
info=$(dpkg-deb -I "$deb")
grep -q '^ Package: wasmjail' <<<"$info" || fail "package name: $info"
grep -q '^ Depends:.*adduser' <<<"$info" || fail "no Depends on adduser: $info"
grep -q '^ Depends:.*libicu' <<<"$info" || fail "libnode's own dependencies are not in Depends: $info"
if grep -q '^ Depends:.*libnode108' <<<"$info"; then fail "depends on libnode108, which is not installable beside NodeSource's nodejs"; fi
echo "package_test: all checks passed"
