set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'
set output "docs/bench/writers-time.svg"
set title "Session steps against subscribed writers" noenhanced
set xlabel "subscribed writers" noenhanced
set ylabel "ms (median, p10–p90)" noenhanced
set grid ytics lc rgb '#dddddd'
set key top left noenhanced
set border 3
set tics nomirror
set logscale x
set logscale y
plot "docs/bench/writers-time.dat" index 0 using 1:2:3:4 with yerrorlines title "GatherWriterMetadata", \
     "docs/bench/writers-time.dat" index 1 using 1:2:3:4 with yerrorlines title "PrepareForBackup", \
     "docs/bench/writers-time.dat" index 2 using 1:2:3:4 with yerrorlines title "DoSnapshotSet", \
     "docs/bench/writers-time.dat" index 3 using 1:2:3:4 with yerrorlines title "BackupComplete", \
     "docs/bench/writers-time.dat" index 4 using 1:2:3:4 with yerrorlines title "release"
