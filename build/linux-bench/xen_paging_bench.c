// SPDX-License-Identifier: GPL-2.0
/*
 * xen_paging_bench: the Linux side of `cargo xtask bench paging`, run in a
 * Linux DomU booted as PV or as PVH (build/src/pagingbench.rs). It times,
 * from kernel context, what the Rust guest's `bench.suite=paging` times
 * (guest/src/bench/paging.rs), through Linux's own paths:
 *
 *   xen_version                            the null hypercall
 *   evtchn_send_upcall_handler_roundtrip   a loopback event to our handler
 *   mmu_update_1/_64_/_512_per_entry       PV only: the raw hypercall
 *   update_va_mapping_invlpg               PV only
 *   kernel_set_pte_flush                   set_pte() of a vmalloc page and
 *                                          __flush_tlb_one_user(): PV goes
 *                                          through Xen's pv_ops (mmu_update,
 *                                          MMUEXT_INVLPG_LOCAL), PVH is a
 *                                          store and invlpg
 *   cr3_reload                             write_cr3(__read_cr3())
 *   walk_4k_per_page                       one word read from every page of
 *                                          a vmalloc'd working set (4 KiB
 *                                          pages), each pass after
 *                                          __flush_tlb_all(), timed 256
 *                                          pages at a time, per page
 *
 * The page-fault round trip is a user process's (build/linux-bench/
 * pfbench.c: a minor fault on a shared page), since a kernel fault on a
 * missing page is an oops, not a mapping.
 *
 * Same timer, warm-up and statistics as xen_hcall_bench.c; lines
 *   BENCH name=N iters=I per=K cycles=min/median/p99/max ns=min/median/p99/max
 * One round per load (the DomU's /init loads it once per round and
 * unloads it after); BENCH-ERROR for what could not be done.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/sort.h>
#include <linux/interrupt.h>
#include <linux/utsname.h>
#include <linux/atomic.h>
#include <linux/preempt.h>
#include <asm/tsc.h>
#include <asm/pgtable.h>
#include <asm/tlbflush.h>
#include <asm/special_insns.h>
#include <asm/processor.h>
#include <xen/xen.h>
#include <xen/events.h>
#include <xen/interface/xen.h>
#include <xen/interface/version.h>
#include <xen/interface/event_channel.h>
#include <xen/page.h>
#include <asm/xen/hypercall.h>
#include <asm/xen/page.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Paging costs in a Xen PV or PVH DomU, the Linux side of cargo xtask bench paging");

static int iters = 10000;
module_param(iters, int, 0444);
MODULE_PARM_DESC(iters, "samples per measurement (quick mode: 300)");
static int walk_mib = 64;
module_param(walk_mib, int, 0444);
MODULE_PARM_DESC(walk_mib, "the walk's working set, MiB");
static int passes = 20;
module_param(passes, int, 0444);
MODULE_PARM_DESC(passes, "timed passes of the walk");

#define SCRATCH_PAGES 512
/* A prime larger than any working set: i * STRIDE mod n visits each page once. */
#define STRIDE 1000003UL

struct summary {
	unsigned long n;
	u64 min, median, p99, max;
};

struct bench {
	u64 *samples;
	u64 overhead;
	u64 tsc_hz;
	int failures;
};

static __always_inline u64 tsc_begin(void)
{
	u32 lo, hi;

	asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((u64)hi << 32) | lo;
}

static __always_inline u64 tsc_end(void)
{
	u32 lo, hi, aux;

	asm volatile("rdtscp; lfence" : "=a"(lo), "=d"(hi), "=c"(aux) :: "memory");
	return ((u64)hi << 32) | lo;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static u64 quantile(const u64 *s, unsigned long n, unsigned long permille)
{
	unsigned long rank = DIV_ROUND_UP(permille * n, 1000);

	rank = clamp(rank, 1UL, n);
	return s[rank - 1];
}

static struct summary summarise(u64 *s, unsigned long n)
{
	struct summary r;

	sort(s, n, sizeof(u64), cmp_u64, NULL);
	r.n = n;
	r.min = s[0];
	r.median = quantile(s, n, 500);
	r.p99 = quantile(s, n, 990);
	r.max = s[n - 1];
	return r;
}

static u64 sub0(u64 a, u64 b)
{
	return a > b ? a - b : 0;
}

static u64 to_ns(struct bench *b, u64 c)
{
	return b->tsc_hz ? mul_u64_u64_div_u64(c, 1000000000ULL, b->tsc_hz) : 0;
}

static void report(struct bench *b, const char *name, struct summary s, u64 per)
{
	printk(KERN_WARNING
	       "BENCH name=%s iters=%lu per=%llu cycles=%llu/%llu/%llu/%llu ns=%llu/%llu/%llu/%llu\n",
	       name, s.n, per, s.min, s.median, s.p99, s.max, to_ns(b, s.min),
	       to_ns(b, s.median), to_ns(b, s.p99), to_ns(b, s.max));
}

/*
 * Times OP n times after n/10 + 1 warm-up runs, each run preceded by an
 * untimed PREP; subtracts the timer, divides by PER, reports.
 */
#define MEASURE_PREP(b, name, n, per, PREP, OP)                               \
	({                                                                    \
		unsigned long __i, __n = (n);                                 \
		struct summary __s;                                           \
		for (__i = 0; __i < __n / 10 + 1; __i++) {                    \
			PREP;                                                 \
			OP;                                                   \
		}                                                             \
		for (__i = 0; __i < __n; __i++) {                             \
			u64 __t0;                                             \
			PREP;                                                 \
			__t0 = tsc_begin();                                   \
			OP;                                                   \
			(b)->samples[__i] = tsc_end() - __t0;                 \
		}                                                             \
		__s = summarise((b)->samples, __n);                           \
		__s.min = sub0(__s.min, (b)->overhead) / (per);               \
		__s.median = sub0(__s.median, (b)->overhead) / (per);         \
		__s.p99 = sub0(__s.p99, (b)->overhead) / (per);               \
		__s.max = sub0(__s.max, (b)->overhead) / (per);               \
		report((b), (name), __s, (per));                              \
		cond_resched();                                               \
		__s;                                                          \
	})
#define MEASURE(b, name, n, per, OP) MEASURE_PREP(b, name, n, per, (void)0, OP)

static atomic64_t round_trips = ATOMIC64_INIT(0);

static irqreturn_t on_round_trip(int irq, void *dev)
{
	atomic64_inc(&round_trips);
	return IRQ_HANDLED;
}

static void fail(struct bench *b, const char *what)
{
	b->failures++;
	printk(KERN_WARNING "BENCH-ERROR %s\n", what);
}

static void event_round_trip(struct bench *b, int n)
{
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
	struct evtchn_bind_interdomain bi;
	struct evtchn_send send;
	struct evtchn_close cl;
	int irq;

	if (HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &au)) {
		fail(b, "EVTCHNOP_alloc_unbound");
		return;
	}
	bi.remote_dom = DOMID_SELF;
	bi.remote_port = au.port;
	if (HYPERVISOR_event_channel_op(EVTCHNOP_bind_interdomain, &bi)) {
		fail(b, "EVTCHNOP_bind_interdomain");
	} else {
		irq = bind_evtchn_to_irqhandler(bi.local_port, on_round_trip, 0,
						"xen-paging-bench", b);
		if (irq < 0) {
			fail(b, "bind_evtchn_to_irqhandler");
			cl.port = bi.local_port;
			HYPERVISOR_event_channel_op(EVTCHNOP_close, &cl);
		} else {
			send.port = au.port;
			MEASURE(b, "evtchn_send_upcall_handler_roundtrip", n, 1,
				HYPERVISOR_event_channel_op(EVTCHNOP_send, &send));
			unbind_from_irqhandler(irq, b);
		}
	}
	cl.port = au.port;
	HYPERVISOR_event_channel_op(EVTCHNOP_close, &cl);
}

/* PV: the raw page-table hypercalls on PTEs of our own vmalloc pages. */
static void pv_page_tables(struct bench *b, int n)
{
	static struct mmu_update req[SCRATCH_PAGES];
	void *buf = vmalloc(SCRATCH_PAGES * PAGE_SIZE);
	unsigned long first_va = 0;
	pte_t first_pte = __pte(0);
	int i;

	if (!buf) {
		fail(b, "no scratch pages for the mmu_update figures");
		return;
	}
	for (i = 0; i < SCRATCH_PAGES; i++) {
		unsigned long va = (unsigned long)buf + i * PAGE_SIZE;
		unsigned int level;
		pte_t *ptep;

		*(volatile char *)va = 0;
		ptep = lookup_address(va, &level);
		if (!ptep || level != PG_LEVEL_4K) {
			fail(b, "a scratch page is not mapped by a 4 KiB entry");
			vfree(buf);
			return;
		}
		req[i].ptr = arbitrary_virt_to_machine(ptep).maddr | MMU_NORMAL_PT_UPDATE;
		req[i].val = native_pte_val(*ptep);
		if (i == 0) {
			first_va = va;
			first_pte = *ptep;
		}
	}
	MEASURE(b, "mmu_update_1", n, 1, HYPERVISOR_mmu_update(req, 1, NULL, DOMID_SELF));
	MEASURE(b, "mmu_update_64_per_entry", DIV_ROUND_UP(n, 4), 64,
		HYPERVISOR_mmu_update(req, 64, NULL, DOMID_SELF));
	MEASURE(b, "mmu_update_512_per_entry", DIV_ROUND_UP(n, 16), 512,
		HYPERVISOR_mmu_update(req, 512, NULL, DOMID_SELF));
	MEASURE(b, "update_va_mapping_invlpg", n, 1,
		HYPERVISOR_update_va_mapping(first_va, first_pte, UVMF_INVLPG | UVMF_LOCAL));
	vfree(buf);
}

/*
 * The kernel's own path for one PTE: set_pte() (PV: Xen's pv_ops, an
 * mmu_update; PVH: a store) and the single-page flush (PV:
 * MMUEXT_INVLPG_LOCAL; PVH: invlpg). The entry is rewritten with its own
 * value: the mapping does not change.
 */
static void kernel_pte(struct bench *b, int n)
{
	void *page = vmalloc(PAGE_SIZE);
	unsigned long va = (unsigned long)page;
	unsigned int level;
	pte_t *ptep;
	int bad = 0;

	if (!page) {
		fail(b, "no page for kernel_set_pte_flush");
		return;
	}
	*(volatile char *)page = 1;
	ptep = lookup_address(va, &level);
	if (!ptep || level != PG_LEVEL_4K) {
		fail(b, "the vmalloc page is not mapped by a 4 KiB entry");
	} else {
		pte_t pte = *ptep;

		MEASURE(b, "kernel_set_pte_flush", n, 1, ({
			preempt_disable();
			set_pte(ptep, pte);
			__flush_tlb_one_user(va);
			preempt_enable();
			bad += *(volatile char *)page != 1;
		}));
		if (bad)
			fail(b, "the page read another value after set_pte");
	}
	vfree(page);
}

/* Xen's write_cr3 wants preemption off (a PV CPU's cr3 is per-CPU state). */
static void cr3(struct bench *b, int n)
{
	MEASURE(b, "cr3_reload", n, 1, ({
		preempt_disable();
		write_cr3(__read_cr3());
		preempt_enable();
	}));
}

/* Pages per timed sample of the walk (the Rust guest's WALK_PIECE). */
#define WALK_PIECE 256

/*
 * Steps from .. from + steps of a pass: step i reads page i * STRIDE mod
 * pages, so a pass reads every page once, scattered. A pass is timed in
 * pieces so that the host descheduling QEMU spoils a few samples, not
 * every pass.
 */
static u64 walk_steps(char *set, unsigned long pages, unsigned long from, unsigned long steps)
{
	unsigned long i, step = STRIDE % pages;
	unsigned long k = (unsigned long)(((u64)from * step) % pages);
	u64 sum = 0;

	for (i = 0; i < steps; i++) {
		sum += *(volatile u64 *)(set + k * PAGE_SIZE + (k % 64) * 64);
		k += step;
		if (k >= pages)
			k -= pages;
	}
	return sum;
}

static void walk(struct bench *b)
{
	unsigned long pages = (unsigned long)walk_mib * 256, k, pieces = pages / WALK_PIECE, n = 0;
	char *set = vmalloc(pages * PAGE_SIZE);
	u64 want = (u64)pages * (pages - 1) / 2;
	struct summary s;
	int bad = 0, pass;

	if (!set) {
		fail(b, "no memory for the working-set walk");
		return;
	}
	for (k = 0; k < pages; k++)
		*(u64 *)(set + k * PAGE_SIZE + (k % 64) * 64) = k;
	printk(KERN_WARNING "BENCH-INFO walk pages=%lu mib=%d passes=%d\n", pages, walk_mib, passes);
	/* One untimed pass, then `passes` timed ones, each after a TLB flush. */
	for (pass = 0; pass <= passes; pass++) {
		u64 sum = 0;
		unsigned long p;

		__flush_tlb_all();
		for (p = 0; p < pieces; p++) {
			u64 t0 = tsc_begin();

			sum += walk_steps(set, pages, p * WALK_PIECE, WALK_PIECE);
			if (pass > 0)
				b->samples[n++] = tsc_end() - t0;
		}
		bad += sum != want;
		cond_resched();
	}
	s = summarise(b->samples, n);
	s.min = sub0(s.min, b->overhead) / WALK_PIECE;
	s.median = sub0(s.median, b->overhead) / WALK_PIECE;
	s.p99 = sub0(s.p99, b->overhead) / WALK_PIECE;
	s.max = sub0(s.max, b->overhead) / WALK_PIECE;
	report(b, "walk_4k_per_page", s, WALK_PIECE);
	if (bad)
		fail(b, "a walk read a wrong sum");
	vfree(set);
}

static int __init bench_init(void)
{
	struct bench b = { .failures = 0 };
	struct summary timer;
	unsigned int major, minor;
	struct xen_extraversion extra;
	int ver, n = iters, samples;

	if (!xen_pv_domain() && !xen_pvh_domain()) {
		pr_err("BENCH-ERROR not a Xen PV or PVH domain\n");
		return -ENODEV;
	}
	if (n < 20)
		n = 20;
	if (passes < 1)
		passes = 1;
	if (walk_mib < 2)
		walk_mib = 2;
	samples = max(n, passes * walk_mib * 256 / WALK_PIECE);
	b.samples = vmalloc(array_size(samples, sizeof(u64)));
	if (!b.samples)
		return -ENOMEM;
	b.tsc_hz = (u64)tsc_khz * 1000;
	ver = HYPERVISOR_xen_version(XENVER_version, NULL);
	major = ver >> 16;
	minor = ver & 0xffff;
	memset(&extra, 0, sizeof(extra));
	HYPERVISOR_xen_version(XENVER_extraversion, &extra);
	extra.extraversion[sizeof(extra.extraversion) - 1] = 0;
	printk(KERN_WARNING
	       "BENCH-ENV xen=%u.%u%s tsc_hz=%llu cpu=\"%s\" domain=domU iters=%d kernel=linux-%s mode=%s suite=paging\n",
	       major, minor, extra.extraversion, b.tsc_hz, boot_cpu_data.x86_model_id, n,
	       init_utsname()->release, xen_pv_domain() ? "pv" : "pvh");

	b.overhead = 0;
	timer = MEASURE(&b, "tsc_timer_pair", n, 1, (void)0);
	b.overhead = timer.median;
	MEASURE(&b, "xen_version", n, 1, HYPERVISOR_xen_version(XENVER_version, NULL));
	event_round_trip(&b, n);
	if (xen_pv_domain())
		pv_page_tables(&b, n);
	kernel_pte(&b, n);
	cr3(&b, n);
	walk(&b);
	printk(KERN_WARNING "BENCH-MODULE-DONE failures=%d\n", b.failures);
	vfree(b.samples);
	return 0;
}

static void __exit bench_exit(void)
{
}

module_init(bench_init);
module_exit(bench_exit);
