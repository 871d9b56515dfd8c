// Build: gcc -O2 -o ns_clone_exit bench/ns_clone_exit.c; run: ns_clone_exit CLONE_FLAGS N [m]
// (m: also mount a tmpfs in a new mount namespace). README, "Performance". Not part of scripts/bench.
// Exit cost (exit_group .. reaped) of a process created in the given namespaces, and its
// clone cost: what each kind of namespace adds to a job process's start and end.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  unsigned long flags=strtoul(argv[1],0,0); int n=atoi(argv[2]); int domount=argc>3;
  double *e=malloc(sizeof(double)*n),*c=malloc(sizeof(double)*n);
  for(int i=0;i<n;i++){
    int p[2]; pipe(p);
    double t0=now();
    long pid=syscall(SYS_clone,flags|SIGCHLD,0,0,0,0);
    if(pid==0){
      double t=now();
      if(domount){ mount(0,"/",0,MS_REC|MS_PRIVATE,0); mount("x","/tmp","tmpfs",0,"size=64k"); }
      write(p[1],&t,sizeof t); t=now(); write(p[1],&t,sizeof t); _exit(0);}
    if(pid<0){perror("clone");return 1;}
    double tc,tx; read(p[0],&tc,sizeof tc); read(p[0],&tx,sizeof tx); waitpid(pid,0,0); double t1=now();
    c[i]=tc-t0; e[i]=t1-tx; close(p[0]);close(p[1]);
  }
  qsort(e,n,sizeof(double),cmp); qsort(c,n,sizeof(double),cmp);
  printf("flags %#lx%s: clone p50 %.3f ms, exit..reap p50 %.3f ms (p90 %.3f)\n",flags,domount?" +tmpfs mount":"",c[n/2],e[n/2],e[n*9/10]);
}
