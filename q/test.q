/ Runs where a licensed q exists (scripts/test.sh calls it when q and QHOME are present): the q layer end to end.
/ q q/test.q -q    with KDBPROM_LIB pointing at the built library (without .so)
\l q/kdbprom.q
fails:0;n:0;
check:{[what;ok]n::n+1;if[not ok;-2"FAIL: ",what;fails::fails+1]};
r:.prom.init`job`instrument!(`qtest;1b);
check["init returns the job";`qtest~r`job];
.prom.counter[`qt_rows_total;"Rows.";`table];
.prom.histogram[`qt_load_seconds;"Load time.";();0.1 1 10f];
s:.prom.series[`qt_rows_total;enlist"trade"];
.prom.inc[s;5];
.prom.inc[s;1 2 3];
.prom.observe[`qt_load_seconds;0.5 2 0D00:00:00.050000000];
check["counter total";(t:.prom.text[])like"*qt_rows_total{table=\"trade\"} 11\n*"];
check["histogram count";t like"*qt_load_seconds_count 3\n*"];
check["negative increment refused";"prom: counter qt_rows_total cannot decrease"~@[.prom.inc[s];-1;{x}]];
/ a sync request that errors through the .z.pg wrapper: counted, and re-signalled unchanged
e:@[.z.pg;"1+`a";{x}];
check["error re-signalled unchanged";e~"type"];
check["error counted";.prom.text[]like"*kdb_request_errors_total{handler=\"sync\"} 1\n*"];
.prom.newmetric[`qt_kx_total;`counter;`src;"1.x"];
h:.prom.addmetric[`qt_kx_total;enlist"a";();0];
check["1.x handle";h~`$"qt_kx_total|a"];
.prom.updval[`$"qt_kx_total|a";+;2];
check["1.x updval";.prom.text[]like"*qt_kx_total{src=\"a\"} 2\n*"];
st:.prom.stop[];
check["nothing lost";st[`events_recorded]=st[`events_applied]+st`events_dropped];
-1 string[n-fails]," passed, ",string[fails]," failed";
exit fails>0
