/ The servers q/test.q starts (q q/test_server.q -p PORT [-b | -u FILE] -q, and -p -PORT): each listens, so kdbprom
/ samples it through sd1 every 200 ms; admits only user u through .z.pw; changes its heap on its own timer, so that
/ samples have something to see; re-wraps handlers from that timer (handle 0) once a client sets rewrapts; and ends
/ itself after a minute should q/test.q not get to tell it (exit, or kill where exit is refused).
\l q/kdbprom.q
.z.pw:{[u;p]u=`u};
stopat:.z.p+0D00:01:00.000000000;
step:0;
grow:();
rewrapts:0b;
.z.ts:{[x]step::(step+1)mod 50;grow::til 10000*step;if[rewrapts;@[.prom.rewrap;::;::]];if[.z.p>stopat;@[{exit x};0;{[e]system"kill -9 ",string .z.i}]]};
\t 100
cfg:`job`textfile`serve_metrics`interval_ms!(`qserver;"/tmp/kdbprom-qserver-",string[abs system"p"],".prom";1b;200);
.prom.init cfg;
