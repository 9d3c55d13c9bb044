set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/cluster-frozen.svg"
set title "How long a cluster set holds the writers frozen" noenhanced
set xlabel "hosts in the set (0: a local lvss backup, no etcd)" noenhanced
set ylabel "ms (median, p10–p90)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
plot "docs/bench/cluster-frozen.dat" index 0 using 1:2:3:4 with yerrorlines title "writers held frozen, the longest host"
