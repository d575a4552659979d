# Sourced by bench scripts that fill and time a ClickHouse of their own: the private
# 18.16 server the tests start (core/service/src/clickhouse/private-server.xml), with
# the query log on so that times are the server's own query_duration_ms.
#
# private_clickhouse DIR starts it with its data in DIR, which is removed when the
# script exits (the server is stopped first); it sets HTTP (its HTTP port) and returns
# once the server answers. Call it from the repository's root.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

private_clickhouse() {
  local src=core/service/src/clickhouse tcp
  ch_dir=$1
  HTTP=$(free_port) tcp=$(free_port)
  mkdir -p "$ch_dir"/{data,tmp,user_files,format_schemas,logs}
  cp "$src/private-users.xml" "$ch_dir/users.xml"
  sed -e "s#{{HTTP_PORT}}#$HTTP#; s#{{TCP_PORT}}#$tcp#; s#{{DATA_DIR}}#$ch_dir#g; s#{{USERS_FILE}}#$ch_dir/users.xml#" \
      -e "s#</yandex>#<query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>500</flush_interval_milliseconds></query_log></yandex>#" \
      "$src/private-server.xml" >"$ch_dir/config.xml"
  (cd "$ch_dir" && exec /usr/sbin/clickhouse-server --config-file="$ch_dir/config.xml" >"$ch_dir/logs/stdout.log" 2>&1 </dev/null) &
  ch_server=$!
  trap stop_private_clickhouse EXIT
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$HTTP/ping" >/dev/null && return; kill -0 "$ch_server" || exit 1; sleep 0.1; done
}

stop_private_clickhouse() {
  kill -TERM "$ch_server" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$ch_server" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$ch_server" 2>/dev/null || true
  wait "$ch_server" 2>/dev/null || true
  mv "$ch_dir" "$ch_dir.removing" && (rm -rf "$ch_dir.removing" &)
}
