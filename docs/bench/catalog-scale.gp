set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/catalog-scale.svg"
set title "lvss with 0, 1,000 and 10,000 snapshots in the catalog" noenhanced
set xlabel "snapshots in the catalog" noenhanced
set ylabel "ms (median)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
set logscale y
plot "docs/bench/catalog-scale.dat" index 0 using 1:2:3:4 with yerrorlines title "AddToSnapshotSet", \
     "docs/bench/catalog-scale.dat" index 1 using 1:2:3:4 with yerrorlines title "DoSnapshotSet", \
     "docs/bench/catalog-scale.dat" index 2 using 1:2:3:4 with yerrorlines title "lvss list shadows", \
     "docs/bench/catalog-scale.dat" index 3 using 1:2:3:4 with yerrorlines title "lvss list shadows --json", \
     "docs/bench/catalog-scale.dat" index 4 using 1:2:3:4 with yerrorlines title "lvssd start"
