set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/cluster.svg"
set title "Cluster snapshot sets: lvss cluster backup over 1, 3 and 5 hosts against a local lvss backup" noenhanced
set xlabel "hosts in the set (0: a local lvss backup, no etcd)" noenhanced
set ylabel "ms (median, p10–p90)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
plot "docs/bench/cluster.dat" index 0 using 1:2:3:4 with yerrorlines title "the command, start to exit"
