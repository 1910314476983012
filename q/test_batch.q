/ The batch job q/test.q runs (q q/test_batch.q -q </dev/null): it does not listen, so it must end at the end of
/ its input, and .z.exit pushes the final state.
\l q/kdbprom.q
.prom.init`job`textfile!(`qbatch;"/tmp/kdbprom-qbatch.prom");
.prom.counter[`batch_rows_total;"Rows.";()];
.prom.inc[`batch_rows_total;3];
-1"batch done";
