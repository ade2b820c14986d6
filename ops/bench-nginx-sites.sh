#!/usr/bin/env bash
# How nginx's `-t` and reload scale with the number of site files (docs/SCALING.md).
# A throwaway prefix with N sites shaped like the generated ones (a server block and an
# upstream with a backup each, one location pair in a shared server), on loopback ports only.
#   ops/bench-nginx-sites.sh 100 1000 5000
set -euo pipefail
for n in "${@:-100 1000}"; do
  p=$(mktemp -d)
  mkdir -p "$p/sites" "$p/logs" "$p/tmp"
  port=$(( 40000 + RANDOM % 20000 ))
  {
    echo "worker_processes 1; pid $p/nginx.pid; error_log $p/logs/error.log;"
    echo "events {} http { access_log off; client_body_temp_path $p/tmp; proxy_temp_path $p/tmp;"
    echo "fastcgi_temp_path $p/tmp; uwsgi_temp_path $p/tmp; scgi_temp_path $p/tmp;"
    echo "server_names_hash_max_size 65536; server_names_hash_bucket_size 128;"
    echo "include $p/sites/*.server.conf;"
    echo "server { listen 127.0.0.1:$port default_server; include $p/sites/*.locations.conf; } }"
  } > "$p/nginx.conf"
  for i in $(seq 1 "$n"); do
    printf 'upstream vmw_site_%d {\n    server 127.0.0.1:%d max_fails=0;\n    server 127.0.0.1:3999 backup;\n    keepalive 8;\n}\nserver {\n    listen 127.0.0.1:%d;\n    server_name site-%d.localhost;\n    location / { proxy_pass http://vmw_site_%d; }\n}\n' \
      "$i" $(( 20000 + i % 40000 )) "$port" "$i" "$i" > "$p/sites/$i.server.conf"
    printf 'location ^~ /site-%d/ { proxy_pass http://vmw_site_%d/; }\nlocation ^~ /%d/ { proxy_pass http://vmw_site_%d/; }\n' "$i" "$i" "$i" "$i" > "$p/sites/$i.locations.conf"
  done
  t0=$(date +%s%N); nginx -q -p "$p" -c "$p/nginx.conf" -t; t1=$(date +%s%N)
  nginx -p "$p" -c "$p/nginx.conf"; sleep 0.5
  old=$(pgrep -P "$(cat "$p/nginx.pid")" | sort | tr '\n' ' ')
  t2=$(date +%s%N); nginx -p "$p" -c "$p/nginx.conf" -s reload
  # The reload is done when the master's workers are all new ones.
  while :; do
    now=$(pgrep -P "$(cat "$p/nginx.pid")" | sort | tr '\n' ' ')
    if [ -n "$now" ] && ! grep -qwF -f <(tr ' ' '\n' <<<"$old" | sed '/^$/d') <<<"$now"; then break; fi
    sleep 0.01
  done
  t3=$(date +%s%N)
  rss=$(ps -o rss= -p "$(cat "$p/nginx.pid")" | tr -d ' ')
  echo "sites=$n nginx_t_ms=$(( (t1 - t0) / 1000000 )) reload_ms=$(( (t3 - t2) / 1000000 )) master_rss_kib=$rss"
  nginx -p "$p" -c "$p/nginx.conf" -s stop; sleep 0.3; rm -rf "$p"
done
