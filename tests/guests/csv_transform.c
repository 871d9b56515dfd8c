// Reads /inputs/data.csv (name,amount rows), writes /outputs/totals.csv with a TOTAL row,
// and prints a one-line summary.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  const char* in_path = argc > 1 ? argv[1] : "/inputs/data.csv";
  const char* out_path = argc > 2 ? argv[2] : "/outputs/totals.csv";
  FILE* in = fopen(in_path, "r");
  if (!in) {
    perror(in_path);
    return 1;
  }
  FILE* out = fopen(out_path, "w");
  if (!out) {
    perror(out_path);
    return 1;
  }
  char line[1024];
  long total = 0, rows = 0;
  while (fgets(line, sizeof line, in)) {
    char* comma = strchr(line, ',');
    if (!comma) continue;
    *comma = '\0';
    char* end;
    long amount = strtol(comma + 1, &end, 10);
    if (end == comma + 1) continue;  // header or malformed row
    fprintf(out, "%s,%ld\n", line, amount * 2);
    total += amount;
    ++rows;
  }
  fprintf(out, "TOTAL,%ld\n", total);
  fclose(out);
  fclose(in);
  printf("%ld rows, total %ld\n", rows, total);
  return 0;
}
