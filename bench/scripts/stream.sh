#!/bin/bash
# A streamed backup (`jetutil backup --stream`) against `cat` + fsync of the same files, a
# JetBackup into a directory, and `restore -`, in the same run. Build first:
#   cargo build --release -p jetdb --bin jetutil && bench/scripts/stream.sh
# (From the second run on the archived logs are gone, truncated by the JetBackup: compare
# the stream with `cat` of the same bytes there.)
set -e
J="${JETUTIL:-$(dirname "$0")/../../target/release/jetutil}"
D="${BENCH_DIR:-$(mktemp -d)}"
rm -rf $D && mkdir -p $D
$J load $D/inst --records 2000000 --value-size 100 --batch 10000 > /dev/null
du -sh $D/inst
for i in 1 2 3; do
  rm -f $D/s.jbk $D/cp.* ; rm -rf $D/bk $D/r
  sync; t0=$(date +%s.%N)
  $J backup $D/inst --stream > $D/s.jbk 2>/dev/null; sync $D/s.jbk
  t1=$(date +%s.%N)
  cat $D/inst/data.edb $D/inst/edb0*.log > $D/cp.all; sync $D/cp.all
  t2=$(date +%s.%N)
  $J backup $D/inst --to $D/bk --create-path > /dev/null
  t3=$(date +%s.%N)
  $J restore - --to $D/r < $D/s.jbk > /dev/null
  t4=$(date +%s.%N)
  echo "run $i: stream $(echo "$t1-$t0"|bc) s ($(stat -c %s $D/s.jbk) B), cat+fsync $(echo "$t2-$t1"|bc) s ($(stat -c %s $D/cp.all) B), backup --to $(echo "$t3-$t2"|bc) s, restore - $(echo "$t4-$t3"|bc) s"
done
uptime
