/ The server q/test.q starts (q q/test_server.q -p PORT -q): listens, refuses user `bad through .z.pw, and ends
/ itself after a minute should q/test.q not get to tell it.
\l q/kdbprom.q
.z.pw:{[u;p]not u=`bad};
.z.ts:{exit 0};
\t 60000
cfg:`job`textfile`serve_metrics`interval_ms!(`qserver;"/tmp/kdbprom-qserver.prom";1b;200);
.prom.init cfg;
