#!/usr/bin/env bash
# demo.sh — the whole network on one machine, from nothing, each step said in plain words.
# Run through `make demo`, which builds bin/ and provides DATABASE_URL (a private cluster when
# none is set). Everything it creates lives in a temp dir removed at the end, unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/evoucher
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
fail() { echo "DEMO FAILED: $*" >&2; [ -f "$work/server.log" ] && tail -n 20 "$work/server.log" >&2; exit 1; }

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

say "A manager records the operator ACME Telecom and its 10.00 EUR product (reorder 5000 codes below 2000)."
"$BIN" operator create --dir "$dir" OP-ACME --name "ACME Telecom"
"$BIN" operator add-product --dir "$dir" --operator OP-ACME --code ACME-10 --face-value 1000 --currency EUR \
  --refill 'Dial *123*{PIN}#' --serial-pattern '[0-9]{12}' --pin-pattern '[0-9]{14}' --reorder-level 2000 --reorder-quantity 5000

say "ACME enrols its signing key: generated in ACME's own token, certified by the platform CA with a one-time code."
opin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label op-acme \
  --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --pin "$opin" >/dev/null
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
rm -f "$work/codes.csv" "$work/pins.txt"

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

say "The terminal gets its own token; its key pair is generated inside it and never leaves it."
tpin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label terminal-T-1 \
  --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --pin "$tpin" | sed 's/^/  /'
export EVOUCHER_HSM_PIN=$tpin   # from here on, the terminal's commands unlock its token with it

say "The terminal enrols: a certificate request signed in its token, plus the one-time code."
"$BIN" pki enrol --dir "$dir" --server "$url" --hsm-token terminal-T-1 --role terminal --key-label terminal \
  --code "$code" --out "$work/terminal.pem"

say "The terminal makes an mTLS call: the center checks chain, validity, role and revocation."
"$BIN" pki whoami --dir "$dir" --server "$url" --hsm-token terminal-T-1 --key-label terminal --cert "$work/terminal.pem"

unset EVOUCHER_HSM_PIN
# The terminal's commands unlock its token with its PIN; the center's use the center's.
t1() { EVOUCHER_HSM_PIN=$tpin "$BIN" terminal "$@"; }

say "Each salesman's vendor card (a SoftHSM2 token standing in for a smart card) gets its key and certificate."
for v in V-1 V-2; do
  cpin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  echo "$cpin" >"$work/card-$v.pin"
  SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label "card-$v" \
    --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --pin "$cpin" >/dev/null
  vcode=$("$BIN" pki issue-code --dir "$dir" --role vendor --entity "$v" | awk '{print $NF}')
  EVOUCHER_HSM_PIN=$cpin "$BIN" pki enrol --dir "$dir" --server "$url" --hsm-token "card-$v" --role vendor \
    --key-label card --code "$vcode" --out "$work/card-$v.pem"
done
term=(--dir "$dir" --server "$url" --hsm-token terminal-T-1 --key-label terminal --cert "$work/terminal.pem" --state "$work/t1")

say "T-1 orders 10 codes: the center reserves them (SKIP LOCKED, earliest expiry first), re-encrypts them under a fresh key split between the terminal and each card, signs the shipment; the terminal verifies and acknowledges it."
t1 order "${term[@]}" --operator OP-ACME --product ACME-10 --quantity 10

say "Alice sells 3 codes: each is decrypted only now, with T-1's share and her card's share, and printed."
EVOUCHER_CARD_PIN=$(cat "$work/card-V-1.pin") t1 sell "${term[@]}" --count 3 --vendor V-1 \
  --card-token card-V-1 --card-cert "$work/card-V-1.pem"

say "T-1 reports its sales (sequence 1) and its stock."
t1 report "${term[@]}"

say "Bob sells 4 more; the report leaves T-1 at 3, below its minimum of 5: a low-stock alarm, and the center ships the difference to its maximum."
EVOUCHER_CARD_PIN=$(cat "$work/card-V-2.pin") t1 sell "${term[@]}" --count 4 --vendor V-2 \
  --card-token card-V-2 --card-cert "$work/card-V-2.pem" | grep -c '^---- ticket' | sed 's/^/tickets printed: /'
t1 report "${term[@]}"
"$BIN" alarms check --dir "$dir" | sed -n 1,4p
t1 sync "${term[@]}"
t1 stock --state "$work/t1"
"$BIN" vault stock --dir "$dir"

say "Using the same enrolment code again is refused."
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

say "The terminal's next call is refused, with the reason."
if out=$(EVOUCHER_HSM_PIN=$tpin "$BIN" pki whoami --dir "$dir" --server "$url" --hsm-token terminal-T-1 \
  --key-label terminal --cert "$work/terminal.pem" 2>&1); then fail "a revoked certificate was accepted"; fi
echo "$out"

say "The refusals are counted in the metrics."
curl -sf --cacert "$dir/ca.pem" "$url/metrics" | grep '^evoucher_pki_refusals_total' || fail "no refusal metrics"

say "An auditor, with only the CA certificate and the log's public key, verifies the whole exchange log from the outside."
apin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label auditor \
  --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --pin "$apin" >/dev/null
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

printf '\n\033[1mdemo complete\033[0m\n'
