set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/catalog-growth.svg"
set title "Creating 10,000 snapshots one after another: time per snapshot, by thousand" noenhanced
set xlabel "snapshots made (end of each thousand)" noenhanced
set ylabel "ms per snapshot (median)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
plot "docs/bench/catalog-growth.dat" index 0 using 1:2:3:4 with yerrorlines title "lvss", \
     "docs/bench/catalog-growth.dat" index 1 using 1:2:3:4 with yerrorlines title "btrfs ioctl"
