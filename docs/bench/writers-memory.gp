set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/writers-memory.svg"
set title "lvssd's memory against subscribed writers" noenhanced
set xlabel "subscribed writers" noenhanced
set ylabel "MB (median)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
plot "docs/bench/writers-memory.dat" index 0 using 1:2:3:4 with yerrorlines title "RSS, idle", \
     "docs/bench/writers-memory.dat" index 1 using 1:2:3:4 with yerrorlines title "anonymous RSS, idle", \
     "docs/bench/writers-memory.dat" index 2 using 1:2:3:4 with yerrorlines title "Go heap in use, idle", \
     "docs/bench/writers-memory.dat" index 3 using 1:2:3:4 with yerrorlines title "RSS, after the backups", \
     "docs/bench/writers-memory.dat" index 4 using 1:2:3:4 with yerrorlines title "Go heap in use, after the backups"
