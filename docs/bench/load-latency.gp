set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/load-latency.svg"
set title "Snapshot latency with each database writer, idle and under write load" noenhanced
set xlabel "database, application" noenhanced
set ylabel "DoSnapshotSet, ms (median, p10–p90)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
set style fill solid 0.6 border -1
set boxwidth 0.6
set xtics noenhanced font ',9'
set bmargin 7
unset key
set yrange [0:*]
plot "docs/bench/load-latency.dat" using 1:3:xtic(2) with boxes lc rgb '#4a7fb0', '' using 1:3:4:5 with yerrorbars lc rgb '#333333' pt -1
