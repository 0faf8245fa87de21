#!/usr/bin/env bash
# demo.sh — the whole network on one machine, from nothing, each step said in plain words.
# Run through `make demo`, which builds bin/ and provides DATABASE_URL (a private cluster when
# none is set). Everything it creates lives in a temp dir removed at the end, unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/evoucher
POS=$PWD/bin/evpos
work=$(mktemp -d /tmp/evdemo.XXXXXX)
dir=$work/center
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step=0
say() { step=$((step + 1)); printf '\n\033[1m%d. %s\033[0m\n' "$step" "$*"; }
# section NAME: a heading for each part of the story; each part below is one function, run in
# order at the end of this file, sharing the variables the earlier parts set.
section() { printf '\n\033[1;4m== %s ==\033[0m\n' "$*"; }
newpin() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
# token LABEL PIN: a fresh SoftHSM2 token in the center's token directory (one machine here).
token() { SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label "$1" --so-pin "$(newpin)" --pin "$2"; }
# sql QUERY: what the center recorded, read straight from its database.
sql() { psql "$DATABASE_URL" -X -q -P pager=off -c "$1"; }
fail() { echo "DEMO FAILED: $*" >&2; [ -f "$work/server.log" ] && tail -n 20 "$work/server.log" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
center() {
section "The center"
say "The center is created from nothing: its HSM token (SoftHSM2 here), the CA, the center's keys and certificates, the schema."
"$BIN" init --dir "$dir"

say "Running init a second time changes nothing."
"$BIN" init --dir "$dir" | tail -n 1

say "The center's server starts: HTTPS with the center-tls certificate, client certificates checked on every machine call."
"$BIN" server --dir "$dir" --listen 127.0.0.1:0 --checkpoint-interval 1s 2>"$work/server.log" &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(grep -o '"msg":"server listening","addr":"[^"]*"' "$work/server.log" 2>/dev/null | sed 's/.*"addr":"//; s/"$//' || true)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server did not start"
  sleep 0.1
done
[ -n "$addr" ] || fail "the server did not say where it listens"
url="https://$addr"
curl -sf --cacert "$dir/ca.pem" "$url/readyz" >/dev/null || fail "the server is not ready"
echo "listening on $url; /readyz says: $(curl -sf --cacert "$dir/ca.pem" "$url/readyz")"
}

# ---------------------------------------------------------------------------------------------
dashboard_users() {
section "Dashboard users"
say "A manager gets a dashboard login: the password comes on stdin, only its argon2id hash is stored."
printf '%s\n' "$manager_pass" | "$BIN" user add --dir "$dir" manager --role manager --password-stdin
echo "the dashboard is at $url/ui/ (the demo logs in to it at the end)"
}
manager_pass=demo-manager-pass
corner_pass=demo-corner-boss-pass

# ---------------------------------------------------------------------------------------------
operator() {
section "The operator: ACME Telecom uploads codes"
say "A manager records the operator ACME Telecom and its 10.00 EUR product (reorder 5000 codes below 2000)."
"$BIN" operator create --dir "$dir" OP-ACME --name "ACME Telecom"
"$BIN" operator add-product --dir "$dir" --operator OP-ACME --code ACME-10 --face-value 1000 --currency EUR \
  --refill 'Dial *123*{PIN}#' --serial-pattern '[0-9]{12}' --pin-pattern '[0-9]{14}' --reorder-level 2000 --reorder-quantity 5000

say "ACME enrols its signing key: generated in ACME's own token, certified by the platform CA with a one-time code."
opin=$(newpin)
token op-acme "$opin" >/dev/null
ocode=$("$BIN" pki issue-code --dir "$dir" --role operator-sign --entity OP-ACME | awk '{print $NF}')
EVOUCHER_HSM_PIN=$opin "$BIN" pki enrol --dir "$dir" --server "$url" --hsm-token op-acme --role operator-sign \
  --key-label sign --code "$ocode" --out "$work/op-sign.pem"

say "ACME seals 1000 codes: encrypted to the center's key (AES-256-GCM, RSA-OAEP), signed in its token, in two parts."
awk 'BEGIN { srand(); for (i = 1; i <= 1000; i++) { pin = ""; for (j = 0; j < 14; j++) pin = pin int(rand() * 10);
  printf "%012d,%s,2027-12-31\n", 400000000000 + i, pin } }' >"$work/codes.csv"
curl -sf --cacert "$dir/ca.pem" "$url/pki/center-encrypt.pem" -o "$work/center-encrypt.pem"
EVOUCHER_HSM_PIN=$opin "$BIN" operator seal --dir "$dir" --hsm-token op-acme --key-label sign --cert "$work/op-sign.pem" \
  --operator OP-ACME --batch B-2026-0001 --product ACME-10 --face-value 1000 --currency EUR --part-size 500 \
  --csv "$work/codes.csv" --center-cert "$work/center-encrypt.pem" --out "$work/batch"
cut -d, -f2 "$work/codes.csv" >"$work/pins.txt"
if grep -qF -f "$work/pins.txt" "$work"/batch/*.xml; then fail "a clear PIN is in the sealed batch"; fi

say "ACME uploads the parts over mTLS; the center verifies, decrypts in its HSM and stores every PIN under a data key wrapped by the HSM's KEK."
EVOUCHER_HSM_PIN=$opin "$BIN" operator upload --dir "$dir" --server "$url" --hsm-token op-acme --key-label sign \
  --cert "$work/op-sign.pem" --receipts "$work/receipts" "$work"/batch/*.xml

say "Sending the same part again adds nothing: the center answers with the same signed receipt."
EVOUCHER_HSM_PIN=$opin "$BIN" operator upload --dir "$dir" --server "$url" --hsm-token op-acme --key-label sign \
  --cert "$work/op-sign.pem" --receipts "$work/receipts-again" "$work/batch/B-2026-0001-part-0001-of-0002.xml"
cmp -s "$work/receipts/B-2026-0001-part-0001-of-0002.receipt.xml" "$work/receipts-again/B-2026-0001-part-0001-of-0002.receipt.xml" \
  || fail "the receipt changed"

say "The vault's stock: 1000 codes, below the reorder level, so the vault ordered more."
"$BIN" vault stock --dir "$dir"
EVOUCHER_HSM_PIN=$opin "$BIN" operator orders --dir "$dir" --server "$url" --hsm-token op-acme --key-label sign --cert "$work/op-sign.pem"

say "No PIN is in clear text in the database: a pg_dump holds none of them."
if command -v pg_dump >/dev/null; then
  pg_dump "$DATABASE_URL" >"$work/dump.sql"
  if grep -qF -f "$work/pins.txt" "$work/dump.sql" "$work/server.log"; then fail "a clear PIN is in the database or the server log"; fi
  echo "searched a $(wc -c <"$work/dump.sql")-byte pg_dump and the server log for all 1000 PINs: none found"
fi
rm -f "$work/codes.csv" "$work/dump.sql"
# pins.txt stays (in the temp dir) until the POS part has checked its own disk for PINs.
}

# ---------------------------------------------------------------------------------------------
retailer() {
section "The retailer: Corner Shop, its terminal and its salesmen"
say "A manager records the retailer Corner Shop, its terminal T-1 and two salesmen, V-1 and V-2."
"$BIN" retailer create --dir "$dir" R-CORNER --name "Corner Shop"
"$BIN" retailer add-terminal --dir "$dir" --retailer R-CORNER --id T-1 --name "front till"
"$BIN" retailer add-vendor --dir "$dir" --retailer R-CORNER --id V-1 --name "Alice"
"$BIN" retailer add-vendor --dir "$dir" --retailer R-CORNER --id V-2 --name "Bob"
"$BIN" retailer set-level --dir "$dir" --terminal T-1 --operator OP-ACME --product ACME-10 --min 5 --max 12

say "A manager issues a one-time enrolment code for terminal T-1."
line=$("$BIN" pki issue-code --dir "$dir" --role terminal --entity T-1)
echo "$line"
code=$(echo "$line" | awk '{print $NF}')
}

# ---------------------------------------------------------------------------------------------
money_terms() {
section "Money: Corner Shop's account, its commission and the platform's margin"
say "Corner Shop's manager gets a dashboard login that sees only Corner Shop."
printf '%s\n' "$corner_pass" | "$BIN" user add --dir "$dir" corner-boss --role retailer_manager --retailer R-CORNER --password-stdin

say "Corner Shop pays before it takes stock (prepaid, EUR, charged when a shipment is sent); it earns 5% on ACME-10; the platform keeps 8% of ACME's face value (so 3% net of the commission)."
"$BIN" money account set --dir "$dir" R-CORNER --mode prepaid --currency EUR
"$BIN" money commission set --dir "$dir" R-CORNER OP-ACME ACME-10 --bps 500
"$BIN" money margin set --dir "$dir" OP-ACME '*' --bps 800

say "A manager records Corner Shop's first bank transfer, 50.00 EUR, with its reference."
"$BIN" money topup --dir "$dir" R-CORNER 50.00 --method bank --reference "SEPA-DEMO-0001" --by manager
"$BIN" money balances --dir "$dir"
}

# ---------------------------------------------------------------------------------------------
# The POS program evpos runs the terminal: its local store (SQLite) is in $posdir, its token
# and the vendor cards are SoftHSM2 tokens. Tickets print on the screen (--printer stdout).
pos_terminal() {
section "The terminal T-1 runs evpos, the POS program"
posdir=$work/pos
say "The terminal gets its own token; its key pair is generated inside it and never leaves it."
tpin=$(newpin)
token terminal-T-1 "$tpin" | sed 's/^/  /'

say "evpos enrols the terminal: a certificate request signed in its token, plus the one-time code; its settings go to $posdir/config.json."
pos enrol --server "$url" --ca "$dir/ca.pem" --token terminal-T-1 --softhsm-conf "$dir/softhsm/softhsm2.conf" --code "$code"

say "The terminal makes an mTLS call: the center checks chain, validity, role and revocation."
EVOUCHER_HSM_PIN=$tpin "$BIN" pki whoami --dir "$dir" --server "$url" --hsm-token terminal-T-1 --key-label terminal --cert "$posdir/terminal.pem"

say "Each salesman's vendor card (a SoftHSM2 token standing in for a smart card) is inserted in T-1 and enrolled: key generated on the card, one-time code."
for v in V-1 V-2; do
  cpin=$(newpin)
  echo "$cpin" >"$work/card-$v.pin"
  token "card-$v" "$cpin" >/dev/null
  vcode=$("$BIN" pki issue-code --dir "$dir" --role vendor --entity "$v" | awk '{print $NF}')
  EVPOS_CARD_PIN=$cpin pos card enrol --card-token "card-$v" --code "$vcode"
done

say "T-1's first sync: the platform's CRL (to check vendor cards while offline) and the center's encryption certificate; nothing to receive yet."
pos sync

say "T-1 orders 10 codes: 10 × 10.00 less the 5% commission is 95.00, but Corner Shop has paid in 50.00. The center refuses the order, stores nothing, and raises a credit_limit alarm."
if out=$(pos order --operator OP-ACME --product ACME-10 --quantity 10 2>&1); then fail "an order beyond the prepaid funds was shipped"; fi
echo "$out"
"$BIN" alarms list --dir "$dir" --kind credit_limit

say "Corner Shop pays 200.00 more by bank transfer; recorded, it lets the shop order again, so the credit_limit alarm resolves itself."
"$BIN" money topup --dir "$dir" R-CORNER 200.00 --method bank --reference "SEPA-DEMO-0002" --by manager
"$BIN" alarms list --dir "$dir" --kind credit_limit --state all

say "The same transfer entered a second time is refused: a payment is never counted twice."
if out=$("$BIN" money topup --dir "$dir" R-CORNER 200.00 --method bank --reference "SEPA-DEMO-0002" 2>&1); then fail "a top-up was recorded twice"; fi
echo "$out"

say "T-1 orders 10 codes again: the center reserves them (SKIP LOCKED, earliest expiry first), re-encrypts them under a fresh key split between the terminal and each card, signs the shipment; evpos verifies, stores and acknowledges it."
pos order --operator OP-ACME --product ACME-10 --quantity 10
pos stock

say "Alice inserts her card and types its PIN; she sells one code. It is decrypted only now, with T-1's share and her card's, committed to the local store, then printed:"
card V-1 pos sell --product ACME-10 --card-token card-V-1

say "She sells 2 more (tickets on the till's printer, a text file here)."
card V-1 pos sell --product ACME-10 --count 2 --card-token card-V-1 --printer "text:$work/printer.txt"
echo "tickets printed: $(grep -c '^Ticket' "$work/printer.txt")"

say "A wrong PIN is refused and counted; the card locks itself after a few."
if out=$(EVPOS_CARD_PIN=0000 pos sell --product ACME-10 --card-token card-V-1 2>&1); then fail "a wrong PIN sold"; fi
echo "$out"

say "The customer lost ticket 1: it is printed again, marked DUPLICATE (counted in the next report, never a new sale)."
card V-1 pos reprint T-1-000001 --card-token card-V-1 --printer "text:$work/printer.txt"
grep -c 'DUPLICATE' "$work/printer.txt" | sed 's/^/DUPLICATE marks on the printer: /'

say "T-1 syncs: its sales go to the center in a signed, gap-free report (sequence 1); the center records them."
pos sync
sql "SELECT s.ticket, c.serial, s.vendor_id AS vendor, s.report_seq, s.reprints, c.state FROM sales s JOIN codes c ON c.id = s.code_id WHERE s.terminal_id = 'T-1' ORDER BY s.ticket"

say "Bob sells 4 codes. Selling never needs the center (offline mode): the sales wait on the terminal's disk."
card V-2 pos sell --product ACME-10 --count 4 --card-token card-V-2 --printer "text:$work/printer.txt"

say "The network is down when T-1 syncs (the center's address is unreachable here): the sales are signed into report 2 and stay queued."
if out=$(pos sync --server https://127.0.0.1:9 2>&1); then fail "a sync without the center succeeded"; fi
echo "$out"
pos status

say "Back online, T-1 syncs: report 2 leaves it at 3 codes, below its minimum of 5, so the center ships it up to its maximum; the next sync brings that shipment."
pos sync
"$BIN" alarms check --dir "$dir" | sed -n 1,4p
pos sync
pos stock
"$BIN" vault stock --dir "$dir"

say "Two codes go back to the center: re-encrypted to its key, signed, sent; the center checks each against its own and puts them back in the vault."
card V-1 pos return --product ACME-10 --count 2 --card-token card-V-1
sql "SELECT state, count(*) FROM codes GROUP BY state ORDER BY state"

say "Bob's card is lost: a manager revokes it. After its next sync (which brings the new CRL), T-1 refuses the card."
vserial=$("$BIN" pki list --dir "$dir" --role vendor --entity V-2 | awk 'NR==2 {print $1}')
"$BIN" pki revoke --dir "$dir" "$vserial" --reason keyCompromise
pos sync
if out=$(card V-2 pos sell --product ACME-10 --card-token card-V-2 2>&1); then fail "a revoked card sold"; fi
echo "$out"

say "Alice closes the shift: opening stock, received, sold, returned, closing stock — reconciled, signed, printed, and sent as the closing report."
pos shift close
sql "SELECT t.id AS terminal, t.report_seq AS last_report, count(s.*) AS sales, count(*) FILTER (WHERE s.report_seq IS NOT NULL) AS reported, sum(s.reprints) AS reprints FROM terminals t LEFT JOIN sales s ON s.terminal_id = t.id WHERE t.id = 'T-1' GROUP BY t.id"

say "The terminal's disk holds no PIN in clear: its store, settings and shift records were searched for all 1000."
if grep -rqF -f "$work/pins.txt" "$posdir"; then fail "a clear PIN is on the terminal's disk"; fi
echo "searched $(du -sh "$posdir" | cut -f1) in $posdir: none found (tickets are on paper only)"
rm -f "$work/pins.txt"
}
# pos ARGS…: evpos for terminal T-1, its token unlocked with its PIN.
pos() { EVPOS_TOKEN_PIN=$tpin "$POS" --dir "$posdir" "$@"; }
# card V CMD…: CMD with vendor V's card PIN typed in.
card() { local v=$1; shift; EVPOS_CARD_PIN=$(cat "$work/card-$v.pin") "$@"; }

# ---------------------------------------------------------------------------------------------
# The same terminal's full-screen mode, as on a 40-column handheld, driven in tmux (skipped
# when tmux is not installed).
pos_screen() {
command -v tmux >/dev/null || { echo "(tmux is not installed: the full-screen part is skipped)"; return 0; }
section "The clerk's full screen on a 40-column handheld (evpos screen, in tmux)"
sock="evdemo-$$"
tm() { tmux -L "$sock" "$@"; }
shot() { sleep "${1:-1}"; tm capture-pane -p -t pos | sed -e 's/^/  │ /'; }
printf '#!/bin/sh\nexport EVPOS_TOKEN_PIN=%s\nexec %s screen --dir %s\n' "$tpin" "$POS" "$posdir" >"$work/screen.sh"
chmod 700 "$work/screen.sh"
tm new-session -d -s pos -x 40 -y 36 "TERM=xterm-256color $work/screen.sh"
say "evpos opens its screen: stock per product, card state, last sync, alarms; keys at the bottom."
shot 2
say "Alice presses c and types her card's PIN (masked), then Enter: the card is active."
tm send-keys -t pos c; sleep 0.5
tm send-keys -t pos -l "$(cat "$work/card-V-1.pin")"; tm send-keys -t pos Enter Enter
shot
say "Enter sells one of the selected product: the ticket preview is the only place the code shows (wiped when closed)."
tm send-keys -t pos Enter
shot
tm send-keys -t pos Enter
say "y syncs in the background; q quits."
tm send-keys -t pos y
shot 3
tm send-keys -t pos q
sleep 1
tm kill-server 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
revocation() {
section "A stolen terminal"
say "Using the terminal's enrolment code again is refused."
if out=$(EVOUCHER_HSM_PIN=$tpin "$BIN" pki enrol --dir "$dir" --server "$url" --hsm-token terminal-T-1 --role terminal --key-label terminal \
  --code "$code" --out "$work/again.pem" 2>&1); then fail "a used code was accepted"; fi
echo "$out"

say "The terminal is reported stolen: a manager revokes its certificate, and a new CRL is published."
serial=$("$BIN" pki list --dir "$dir" --role terminal --entity T-1 | awk 'NR==2 {print $1}')
"$BIN" pki revoke --dir "$dir" "$serial" --reason keyCompromise
curl -sf --cacert "$dir/ca.pem" "$url/pki/crl" -o "$work/crl.der"
echo "CRL downloaded from $url/pki/crl ($(wc -c <"$work/crl.der") bytes)"

say "Its unsold codes are quarantined at once; the list of serials goes to the operator to block."
"$BIN" vault quarantine --dir "$dir" --terminal T-1 | sed -n 1,5p

say "The terminal's next sync is refused, with the reason."
if out=$(pos sync 2>&1); then fail "a revoked terminal synced"; fi
echo "$out"

say "The refusals are counted in the metrics."
curl -sf --cacert "$dir/ca.pem" "$url/metrics" | grep '^evoucher_pki_refusals_total' || fail "no refusal metrics"
}

# ---------------------------------------------------------------------------------------------
money_close() {
section "Money: the day's books, statements and clearing"
today=$(date -u +%F)
say "Every account: Corner Shop paid 250.00 and took 10 + 9 codes (its 2 returned codes credited back); what ACME is owed; the platform's margin and bank. --check checks the books (every balance is the sum of its entries, every currency's entries sum to zero)."
"$BIN" money balances --dir "$dir" --check

say "Corner Shop's signed statement for today, as a PDF; --check reconciles it with the ledger."
"$BIN" money statement --dir "$dir" R-CORNER --from "$today" --to now --format pdf -o "$work/corner-$today.pdf" --check
echo "$(head -c 5 "$work/corner-$today.pdf") document, $(wc -c <"$work/corner-$today.pdf") bytes"

say "ACME's statement: what the platform owes it for the codes Corner Shop took (signed XML, appended to the exchange log)."
"$BIN" money statement --dir "$dir" OP-ACME --from "$today" --to now -o "$work/acme-$today.xml" --check
"$BIN" money statement --dir "$dir" OP-ACME --from "$today" --to now --format csv --check

say "ACME fetches its statements from the center over mTLS, checks the center's signature on each, and keeps them."
EVOUCHER_HSM_PIN=$opin "$BIN" operator statements --dir "$dir" --server "$url" --hsm-token op-acme --key-label sign --cert "$work/op-sign.pem" --out "$work/acme-statements"

say "The clearing of the day: what Corner Shop was charged, split between ACME and the platform."
"$BIN" money clearing --dir "$dir" --from "$today" --to now
}

# ---------------------------------------------------------------------------------------------
audit() {
section "The auditor"
say "An auditor, with only the CA certificate and the log's public key, verifies the whole exchange log from the outside."
apin=$(newpin)
token auditor "$apin" >/dev/null
acode=$("$BIN" pki issue-code --dir "$dir" --role auditor --entity AUD-1 | awk '{print $NF}')
EVOUCHER_HSM_PIN=$apin "$BIN" pki enrol --dir "$dir" --server "$url" --hsm-token auditor --role auditor --ecdsa \
  --key-label audit --code "$acode" --out "$work/auditor.pem"
mkdir -p "$work/auditor" && cp "$dir/ca.pem" "$dir/log.vkey" "$work/auditor/"
sleep 2 # the server signs a checkpoint every second here
aud=(--dir "$dir" --server "$url" --ca "$work/auditor/ca.pem" --log-key "$work/auditor/log.vkey" --hsm-token auditor --key-label audit --cert "$work/auditor.pem")
EVOUCHER_HSM_PIN=$apin "$BIN" audit verify "${aud[@]}" --state "$work/auditor/state"

say "The inclusion proof of ACME's first batch part, checked against the signed checkpoint."
batchid=$(grep -o 'MessageId="[^"]*"' "$work/batch/B-2026-0001-part-0001-of-0002.xml" | head -n 1 | cut -d'"' -f2)
EVOUCHER_HSM_PIN=$apin "$BIN" audit prove "$batchid" "${aud[@]}"
}

# ---------------------------------------------------------------------------------------------
# curl_ui ARGS…: curl against the dashboard with the session's cookie jar (TLS checked against
# the demo's CA).
curl_ui() { curl -sS --fail-with-body --cacert "$dir/ca.pem" -c "$work/cookies" -b "$work/cookies" "$@"; }
dashboard_check() {
section "The web dashboard"
say "The dashboard is served by the same server. It is checked here as a browser would use it: the login form's anti-forgery token, a session cookie, then the overview page and its JSON."
tok=$(curl_ui "$url/login" | grep -o 'name="csrf" value="[^"]*"' | cut -d'"' -f4)
[ -n "$tok" ] || fail "the login page has no anti-forgery token"
curl_ui -o /dev/null -w 'login as manager: HTTP %{http_code}, sent to %{redirect_url}\n' --data-urlencode "csrf=$tok" \
  --data-urlencode name=manager --data-urlencode "password=$manager_pass" "$url/login"
page=$(curl_ui "$url/ui/")
for want in OP-ACME ACME-10 'id="sales-today"' '<tr id="alarm-'; do
  grep -q "$want" <<<"$page" || fail "the overview page does not show $want"
done
echo "GET /ui/ ($(wc -c <<<"$page") bytes) shows ACME's stock, today's sales and money, and the open alarms:"
sed -n '/id="live-alarms"/,/<\/table>/p' <<<"$page" | grep -o '<tr id="alarm-[^"]*"><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td>' | sed 's/<[^>]*>/ /g; s/  */ /g; s/^/  /'
json=$(curl_ui "$url/api/v1/overview")
if command -v jq >/dev/null; then
  echo "GET /api/v1/overview:"
  jq -r '(.stock[] | "  stock \(.operator)/\(.product): vault \(.vault), terminals \(.terminals), sold today \(.sold_today)"),
    (.sales_today[] | "  sales today: \(.codes) codes, face value \(.face_value / 100) \(.currency) (minor units: \(.face_value))"),
    (.alarms[] | "  open alarm \(.id): \(.kind) \(.subject) — \(.message)")' <<<"$json"
else
  echo "GET /api/v1/overview: $json" | cut -c 1-600
fi
grep -q '"state":"open"' <<<"$json" || fail "the overview JSON lists no open alarm"

say "Alarms arrive live: the page keeps a server-sent-events stream open (as the browser's EventSource does here with curl); a manager acknowledges the vault's low-stock alarm from the CLI, and the change arrives on the open stream at once."
curl_ui -N --max-time 6 "$url/ui/events" >"$work/events" 2>/dev/null &
stream=$!
sleep 1
vid=$(psql "$DATABASE_URL" -XtAc "SELECT id FROM alarms WHERE kind = 'vault_low_stock' AND state = 'open' ORDER BY id LIMIT 1")
[ -n "$vid" ] || fail "no open vault_low_stock alarm to acknowledge"
"$BIN" alarms ack --dir "$dir" "$vid"
wait "$stream" || true
grep -q "^data: {\"id\":$vid,.*\"state\":\"acknowledged\"" "$work/events" || fail "the acknowledged alarm did not arrive on the live stream"
echo "on the open stream:"; grep -E '^(event|data):' "$work/events" | sed 's/^/  /'
money=$(curl_ui "$url/ui/money")
grep -q 'retailer:R-CORNER' <<<"$money" || fail "the money page does not show Corner Shop"
echo "GET /ui/money, Corner Shop's row:$(grep -A1 'id="bal-retailer:R-CORNER"' <<<"$money" | tr -d '\n' | sed 's/<[^>]*>/ /g; s/  */ /g')"
curl_ui "$url/ui/retailers" | grep -q 'R-CORNER' || fail "the retailers page does not list Corner Shop"
echo "GET /ui/retailers lists R-CORNER (Corner Shop)"

say "Corner Shop's manager logs in: the dashboard shows it Corner Shop's account and nothing else."
rm -f "$work/cookies"
tok=$(curl_ui "$url/login" | grep -o 'name="csrf" value="[^"]*"' | cut -d'"' -f4)
curl_ui -o /dev/null --data-urlencode "csrf=$tok" --data-urlencode name=corner-boss --data-urlencode "password=$corner_pass" "$url/login"
echo "GET /api/v1/money/balances as corner-boss: $(curl_ui "$url/api/v1/money/balances")"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/ca.pem" -b "$work/cookies" "$url/api/v1/money/accounts/operator:OP-ACME")
echo "GET /api/v1/money/accounts/operator:OP-ACME as corner-boss: HTTP $code"
[ "$code" = 404 ] || fail "a retailer manager sees the operator's account"

printf '\n\033[1mThe dashboard: %s/ui/  —  log in as manager / %s\033[0m (or corner-boss / %s)\n' "$url" "$manager_pass" "$corner_pass"
echo "Its certificate is from the demo's own CA ($dir/ca.pem): the browser will warn. KEEP=1 make demo keeps it running to browse."
}

# With KEEP=1 on a terminal, the server (and make demo's private database) stay up until Enter.
keep_open() {
[ "${KEEP:-0}" = 1 ] && [ -t 0 ] || return 0
printf '\nKEEP=1: the center keeps running at %s/ui/ (manager / %s). Press Enter to stop it.\n' "$url" "$manager_pass"
read -r _
}

# ---------------------------------------------------------------------------------------------
# The story, in order. A new part is a function above and a line here.
center
dashboard_users
operator
retailer
money_terms
pos_terminal
pos_screen
revocation
money_close
audit
dashboard_check
keep_open
printf '\n\033[1mdemo complete\033[0m\n'
