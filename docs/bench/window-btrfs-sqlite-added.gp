set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/window-btrfs-sqlite-added.svg"
set title "Freeze window on btrfs: what each operation adds to the longest SQLite commit" noenhanced
set xlabel "" noenhanced
set ylabel "longest stall beyond a matched idle watch, ms (median, p10–p90)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
set style fill solid 0.6 border -1
set boxwidth 0.6
set xtics noenhanced font ',9'
set bmargin 7
unset key
set yrange [*:*]
set xzeroaxis lt -1
plot "docs/bench/window-btrfs-sqlite-added.dat" using 1:3:xtic(2) with boxes lc rgb '#4a7fb0', '' using 1:3:4:5 with yerrorbars lc rgb '#333333' pt -1
