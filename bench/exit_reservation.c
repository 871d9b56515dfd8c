// Build: gcc -O2 -o exit_reservation bench/exit_reservation.c; run: exit_reservation SIZE TOUCH N
// (README, "Performance": what a job process's exit costs). Not part of scripts/bench.
// Exit cost of a process holding a PROT_NONE reservation of SIZE bytes (a wasm memory's
// guard region) with TOUCH bytes of it made read-write and written, vs none.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
int main(int argc,char**argv){
  size_t size=strtoull(argv[1],0,0), touch=strtoull(argv[2],0,0); int n=atoi(argv[3]);
  double *d=malloc(sizeof(double)*n);
  for(int i=0;i<n;i++){
    int p[2]; pipe(p);
    pid_t c=fork();
    if(c==0){
      char*r= size? mmap(0,size,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0) : mmap(0,touch?touch:4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
      if(size) mprotect(r,touch,PROT_READ|PROT_WRITE);
      memset(r,1,touch);
      double t=now(); write(p[1],&t,sizeof t); _exit(0);
    }
    double t0; read(p[0],&t0,sizeof t0); waitpid(c,0,0); d[i]=now()-t0; close(p[0]);close(p[1]);
  }
  // median
  for(int i=0;i<n;i++)for(int j=i+1;j<n;j++)if(d[j]<d[i]){double x=d[i];d[i]=d[j];d[j]=x;}
  printf("reserve %zu MiB, touched %zu KiB: exit..reap p50 %.3f ms (p10 %.3f p90 %.3f)\n",size>>20,touch>>10,d[n/2],d[n/10],d[n*9/10]);
}
