// SPDX-License-Identifier: GPL-2.0
/*
 * xen_hcall_bench: the comparator of `app=bench` (guest/src/bench/), run
 * inside a Linux PV DomU. Every figure is taken from kernel context with
 * Linux's own hypercall wrappers (HYPERVISOR_*), exactly the way the Rust
 * guest takes it: warm-up of iters/10 + 1, then `iters` samples each timed
 * with `lfence; rdtsc` ... `rdtscp; lfence`, the median cost of the timer
 * pair subtracted, min/median/p99/max in cycles and in ns (tsc_khz, which a
 * PV guest takes from Xen's vcpu_time_info), printed with printk as
 *
 *   BENCH name=N iters=I per=K cycles=min/median/p99/max ns=min/median/p99/max
 *
 * so that one parser reads both guests. Timings are reported, never judged
 * here (`cargo xtask bench hypercall` prints the comparisons); BENCH-ERROR
 * is for an operation that failed or could not be set up. The module runs `runs` rounds
 * (each preceded by `BENCH-RUN n=R`) and prints `BENCH-DONE failures=F`,
 * all in its init function. It then stays loaded (doing nothing): an
 * init that fails makes busybox's insmod retry with init_module(2), which
 * would run everything twice.
 *
 * Built by `cargo xtask bench hypercall` against Debian's linux-headers for
 * the kernel the lab boots; never committed as a binary.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/sort.h>
#include <linux/interrupt.h>
#include <linux/utsname.h>
#include <linux/atomic.h>
#include <asm/tsc.h>
#include <asm/pgtable.h>
#include <asm/processor.h>
#include <xen/xen.h>
#include <xen/events.h>
#include <xen/xenbus.h>
#include <xen/interface/xen.h>
#include <xen/interface/version.h>
#include <xen/interface/sched.h>
#include <xen/interface/event_channel.h>
#include <xen/interface/grant_table.h>
#include <xen/grant_table.h>
#include <xen/page.h>
#include <asm/xen/hypercall.h>
#include <asm/xen/page.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Xen PV hypercall latency, the Linux side of cargo xtask bench hypercall");

static int iters = 10000;
module_param(iters, int, 0444);
MODULE_PARM_DESC(iters, "samples per measurement (quick mode: 300)");
static int runs = 1;
module_param(runs, int, 0444);
MODULE_PARM_DESC(runs, "rounds of the whole suite");

#define SCRATCH_PAGES 512
#define MULTI 32

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

/* The same serialised pair as the Rust guest (platform::tsc_begin/end). */
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

/* Nearest rank, as guest/src/bench/stats.rs. */
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
 * Times OP (a statement using the variables in scope) n times after
 * n/10 + 1 warm-up runs; subtracts the timer, divides by PER, reports.
 */
#define MEASURE(b, name, n, per, OP)                                          \
	({                                                                    \
		unsigned long __i, __n = (n);                                 \
		struct summary __s;                                           \
		for (__i = 0; __i < __n / 10 + 1; __i++) {                    \
			OP;                                                   \
		}                                                             \
		for (__i = 0; __i < __n; __i++) {                             \
			u64 __t0 = tsc_begin();                               \
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

static noinline u64 noop(u64 x)
{
	asm volatile("" : "+r"(x));
	return x;
}

/* Static: 2 KiB is too much for a kernel stack frame. */
static struct multicall_entry mc[MULTI];

static atomic64_t round_trips = ATOMIC64_INIT(0);

static irqreturn_t on_round_trip(int irq, void *dev)
{
	atomic64_inc(&round_trips);
	return IRQ_HANDLED;
}

static atomic64_t pongs = ATOMIC64_INIT(0);

static void pong(void *info)
{
	atomic64_inc(&pongs);
}

/*
 * One page off this CPU's TLB, as Linux's flush_tlb_kernel_range has
 * each CPU do it on PV (flush_tlb_one_kernel: the paravirt local invlpg,
 * MMUEXT_INVLPG_LOCAL).
 */
static void flush_one(void *va)
{
	struct mmuext_op op = { .cmd = MMUEXT_INVLPG_LOCAL };

	op.arg1.linear_addr = (unsigned long)va;
	HYPERVISOR_mmuext_op(&op, 1, NULL, DOMID_SELF);
}

static void fail(struct bench *b, const char *what)
{
	b->failures++;
	printk(KERN_WARNING "BENCH-ERROR %s\n", what);
}

/* Page-table entries of our own pages, rewritten with their own values. */
struct scratch {
	void *buf;
	struct mmu_update req[SCRATCH_PAGES];
	unsigned long first_va;
	pte_t first_pte;
};

static int scratch_init(struct scratch *s)
{
	int i;

	s->buf = vmalloc(SCRATCH_PAGES * PAGE_SIZE);
	if (!s->buf)
		return -ENOMEM;
	for (i = 0; i < SCRATCH_PAGES; i++) {
		unsigned long va = (unsigned long)s->buf + i * PAGE_SIZE;
		unsigned int level;
		pte_t *ptep;

		/* Touch it: vmalloc pages are mapped, but be sure. */
		*(volatile char *)va = 0;
		ptep = lookup_address(va, &level);
		if (!ptep || level != PG_LEVEL_4K) {
			vfree(s->buf);
			return -EFAULT;
		}
		s->req[i].ptr = arbitrary_virt_to_machine(ptep).maddr |
				MMU_NORMAL_PT_UPDATE;
		/* The raw (machine) entry, as Xen holds it. */
		s->req[i].val = native_pte_val(*ptep);
		if (i == 0) {
			s->first_va = va;
			s->first_pte = *ptep;
		}
	}
	return 0;
}

static void run_suite(struct bench *b, int n)
{
	struct summary timer;
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
	struct evtchn_bind_interdomain bi;
	struct evtchn_send send;
	struct evtchn_close cl;
	struct mmuext_op flush = { .cmd = MMUEXT_TLB_FLUSH_LOCAL };
	struct scratch *sc;
	int irq, rc, k;

	b->overhead = 0;
	timer = MEASURE(b, "tsc_timer_pair", n, 1, (void)0);
	b->overhead = timer.median;

	MEASURE(b, "function_call", n, 1, noop(1));
	MEASURE(b, "xen_version", n, 1,
		       HYPERVISOR_xen_version(XENVER_version, NULL));
	MEASURE(b, "sched_yield", n, 1, HYPERVISOR_sched_op(SCHEDOP_yield, NULL));

	/* A loopback pair: send on `au.port` raises `bi.local_port`. */
	rc = HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &au);
	if (rc) {
		fail(b, "EVTCHNOP_alloc_unbound");
	} else {
		bi.remote_dom = DOMID_SELF;
		bi.remote_port = au.port;
		rc = HYPERVISOR_event_channel_op(EVTCHNOP_bind_interdomain, &bi);
		if (rc) {
			fail(b, "EVTCHNOP_bind_interdomain");
		} else {
			irq = bind_evtchn_to_irqhandler(bi.local_port, on_round_trip, 0,
							"xen-hcall-bench", b);
			if (irq < 0) {
				fail(b, "bind_evtchn_to_irqhandler");
				cl.port = bi.local_port;
				HYPERVISOR_event_channel_op(EVTCHNOP_close, &cl);
			} else {
				s64 before, delivered, expected;

				send.port = au.port;
				/* Upcalls masked: the hypercall alone. */
				local_irq_disable();
				MEASURE(b, "evtchn_send", n, 1,
					HYPERVISOR_event_channel_op(EVTCHNOP_send, &send));
				local_irq_enable();
				/*
				 * Upcalls on: Xen delivers the event as the
				 * hypercall returns; upcall, Linux's irq layer,
				 * the handler and the return are inside.
				 */
				before = atomic64_read(&round_trips);
				MEASURE(b, "evtchn_send_upcall_handler_roundtrip", n, 1,
					HYPERVISOR_event_channel_op(EVTCHNOP_send, &send));
				delivered = atomic64_read(&round_trips) - before;
				expected = n + n / 10 + 1;
				if (delivered < expected)
					printk(KERN_WARNING "BENCH-NOTE round trip: %lld handler runs for %lld sends (Linux coalesces pending events)\n",
					       delivered, expected);
				unbind_from_irqhandler(irq, b);
			}
		}
		cl.port = au.port;
		HYPERVISOR_event_channel_op(EVTCHNOP_close, &cl);
	}

	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc || scratch_init(sc)) {
		fail(b, "no scratch pages for the page-table benchmarks");
	} else {
		MEASURE(b, "mmu_update_1", n, 1,
				 HYPERVISOR_mmu_update(sc->req, 1, NULL, DOMID_SELF));
		MEASURE(b, "mmu_update_64_per_entry", DIV_ROUND_UP(n, 4), 64,
			HYPERVISOR_mmu_update(sc->req, 64, NULL, DOMID_SELF));
		MEASURE(b, "mmu_update_512_per_entry", DIV_ROUND_UP(n, 16), 512,
				  HYPERVISOR_mmu_update(sc->req, 512, NULL, DOMID_SELF));
		MEASURE(b, "update_va_mapping_invlpg", n, 1,
			HYPERVISOR_update_va_mapping(sc->first_va, sc->first_pte,
						     UVMF_INVLPG | UVMF_LOCAL));
		vfree(sc->buf);
	}
	kfree(sc);

	MEASURE(b, "mmuext_tlb_flush_local", n, 1,
		HYPERVISOR_mmuext_op(&flush, 1, NULL, DOMID_SELF));

	MEASURE(b, "multicall_32_xen_version_total", DIV_ROUND_UP(n, 4), 1, ({
		for (k = 0; k < MULTI; k++) {
			mc[k].op = __HYPERVISOR_xen_version;
			mc[k].result = 0;
			mc[k].args[0] = XENVER_version;
			mc[k].args[1] = 0;
		}
		HYPERVISOR_multicall(mc, MULTI);
	}));
	MEASURE(b, "separate_32_xen_version_total", DIV_ROUND_UP(n, 4), 1, ({
		for (k = 0; k < MULTI; k++)
			HYPERVISOR_xen_version(XENVER_version, NULL);
	}));

	/*
	 * Grants, as the Rust guest measures them: granting one of our pages
	 * to ourselves and ending the grant (reference allocation included),
	 * then a GNTTABOP_copy of a whole page, frame to frame.
	 */
	{
		struct page *src = alloc_page(GFP_KERNEL | __GFP_ZERO);
		struct page *dst = alloc_page(GFP_KERNEL | __GFP_ZERO);
		unsigned int len, self = 0;
		char *v = xenbus_read(XBT_NIL, "domid", "", &len);

		if (!IS_ERR(v)) {
			if (kstrtouint(v, 10, &self))
				self = 0;
			kfree(v);
		}
		if (!src || !dst || self == 0) {
			fail(b, "no pages or no domain id for the grant benchmarks");
		} else {
			unsigned long sframe = xen_page_to_gfn(src);
			unsigned long dframe = xen_page_to_gfn(dst);
			struct gnttab_copy op;
			int bad = 0;

			MEASURE(b, "grant_access_end_access", n, 1, ({
				int ref = gnttab_grant_foreign_access(self, sframe, 1);

				if (ref < 0) {
					bad++;
				} else {
					if (!gnttab_end_foreign_access_ref(ref))
						bad++;
					gnttab_free_grant_reference(ref);
				}
			}));
			MEASURE(b, "gnttab_copy_4k", n, 1, ({
				memset(&op, 0, sizeof(op));
				op.source.u.gmfn = sframe;
				op.source.domid = DOMID_SELF;
				op.dest.u.gmfn = dframe;
				op.dest.domid = DOMID_SELF;
				op.len = PAGE_SIZE;
				HYPERVISOR_grant_table_op(GNTTABOP_copy, &op, 1);
				if (op.status != GNTST_okay)
					bad++;
			}));
			if (bad)
				fail(b, "a grant or a grant copy failed while measured");
		}
		if (src)
			__free_page(src);
		if (dst)
			__free_page(dst);
	}

	/*
	 * Across vCPUs, with a second one online: an IPI round trip
	 * (smp_call_function_single with wait: the function runs on the other
	 * CPU from its IPI, this CPU spins until it has), a one-page TLB
	 * shootdown the way flush_tlb_kernel_range does it (on_each_cpu: an
	 * IPI to the other CPU, each flushing locally, waited for; not
	 * exported to modules, hence rebuilt here) and the MMUEXT_INVLPG_MULTI
	 * hypercall alone (what Linux uses for user address spaces, and what
	 * the Rust guest's PV shootdown is).
	 */
	if (num_online_cpus() >= 2) {
		int me = get_cpu();
		int other = cpumask_any_but(cpu_online_mask, me);
		unsigned long page = __get_free_page(GFP_ATOMIC);
		unsigned long bits = 1UL << other;
		struct mmuext_op multi = { .cmd = MMUEXT_INVLPG_MULTI };
		s64 before = atomic64_read(&pongs), ran;
		int bad = 0;

		printk(KERN_WARNING "BENCH-ENV vcpus=%u\n", num_online_cpus());
		MEASURE(b, "ipi_roundtrip", n, 1,
			bad += !!smp_call_function_single(other, pong, NULL, 1));
		ran = atomic64_read(&pongs) - before;
		if (bad || ran != n + n / 10 + 1)
			fail(b, "an IPI call failed or did not run once");
		if (!page) {
			fail(b, "no page for the shootdown");
		} else {
			MEASURE(b, "tlb_shootdown_1_page", n, 1,
				on_each_cpu(flush_one, (void *)page, 1));
			multi.arg1.linear_addr = page;
			multi.arg2.vcpumask = &bits;
			MEASURE(b, "mmuext_invlpg_multi", n, 1,
				bad += !!HYPERVISOR_mmuext_op(&multi, 1, NULL, DOMID_SELF));
			if (bad)
				fail(b, "MMUEXT_INVLPG_MULTI failed");
			free_page(page);
		}
		put_cpu();
	} else {
		printk(KERN_WARNING "BENCH-ENV vcpus=1 (no IPI or shootdown figures)\n");
	}

	/* xenbus_read: Linux's xenbus request path to xenstored and back. */
	MEASURE(b, "xenstore_read_roundtrip", max(n / 20, 20), 1, ({
		unsigned int len;
		void *v = xenbus_read(XBT_NIL, "domid", "", &len);

		if (!IS_ERR(v))
			kfree(v);
	}));
}

static int __init bench_init(void)
{
	struct bench b = { .failures = 0 };
	unsigned int major, minor;
	int ver, r;
	struct xen_extraversion extra;

	if (!xen_pv_domain()) {
		pr_err("BENCH-ERROR not a Xen PV domain\n");
		return -ENODEV;
	}
	if (iters < 20)
		iters = 20;
	b.samples = vmalloc(array_size(iters, sizeof(u64)));
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
	       "BENCH-ENV xen=%u.%u%s tsc_hz=%llu cpu=\"%s\" domain=domU iters=%d kernel=linux-%s runs=%d\n",
	       major, minor, extra.extraversion, b.tsc_hz,
	       boot_cpu_data.x86_model_id, iters, init_utsname()->release, runs);
	for (r = 1; r <= runs; r++) {
		printk(KERN_WARNING "BENCH-RUN n=%d\n", r);
		run_suite(&b, iters);
	}
	printk(KERN_WARNING "BENCH-DONE failures=%d\n", b.failures);
	vfree(b.samples);
	return 0;
}

static void __exit bench_exit(void)
{
}

module_init(bench_init);
module_exit(bench_exit);
