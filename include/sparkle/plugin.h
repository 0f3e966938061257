/* sparkle plugin ABI: the C contract between libsparkle (the host) and a
 * backend shared object. Plain C so that any compiler can build a plugin.
 *
 * Rules (see docs/PLUGINS.md):
 *  - A plugin exports exactly one symbol, SPARKLE_PLUGIN_ENTRY_NAME.
 *  - Structs are append-only. Every struct starts with `struct_size`, so a
 *    host can tell which members exist. Members marked "optional" may be
 *    NULL; members added later say "since vMAJOR.MINOR". The host accepts
 *    any descriptor whose struct_size covers the v1.0 members and treats a
 *    later member as absent (NULL) when struct_size does not reach it, so a
 *    plugin built for an older minor keeps loading in a newer host.
 *  - No C++ exception may cross this boundary. Errors are returned as a
 *    sparkle_status made with host->make_status (NULL means success).
 *  - Every function may be called from any thread unless it says otherwise;
 *    a plugin serialises internally where its API needs it (a GL context).
 */
#ifndef SPARKLE_PLUGIN_H
#define SPARKLE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPARKLE_PLUGIN_ABI_MAJOR 1u
#define SPARKLE_PLUGIN_ABI_MINOR 4u
#define SPARKLE_PLUGIN_ABI_VERSION ((SPARKLE_PLUGIN_ABI_MAJOR << 16) | SPARKLE_PLUGIN_ABI_MINOR)
#define SPARKLE_PLUGIN_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)

#define SPARKLE_PLUGIN_ENTRY_NAME "sparkle_plugin_entry"

#if defined(__GNUC__)
#define SPARKLE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SPARKLE_PLUGIN_EXPORT
#endif

/* Error codes shared by the host, the plugins and sparkle::Error. */
typedef enum sparkle_code {
  SPARKLE_OK = 0,
  SPARKLE_INVALID_ARGUMENT = 1, /* caller's fault: a field is out of range */
  SPARKLE_UNSUPPORTED = 2,      /* valid, but this device cannot do it */
  SPARKLE_OUT_OF_MEMORY = 3,    /* host or device allocation failed */
  SPARKLE_DEVICE_ERROR = 4,     /* the driver or device failed */
  SPARKLE_NOT_FOUND = 5,        /* a named thing (device, file) is absent */
  SPARKLE_IO_ERROR = 6,         /* reading or writing a file failed */
  SPARKLE_INTERNAL = 7          /* a bug */
} sparkle_code;

/* Opaque error object owned by the host. NULL means success. */
typedef struct sparkle_status_t* sparkle_status;

typedef enum sparkle_log_level {
  SPARKLE_LOG_DEBUG = 0,
  SPARKLE_LOG_INFO = 1,
  SPARKLE_LOG_WARN = 2,
  SPARKLE_LOG_ERROR = 3
} sparkle_log_level;

/* since v1.1: what identifies a compiled program (or any derived blob) in
 * the host's persistent store. The host hashes every field, plus its cache
 * format version and its own build id, into the entry's key (SHA-256). */
typedef struct sparkle_blob_key {
  uint32_t struct_size;
  const char* plugin;             /* plugin name */
  const char* plugin_build_id;    /* changes whenever generated code may change */
  const char* kind;               /* what the payload is, e.g. "gl-program-binary" */
  const char* name;               /* variant name, for listings */
  const char* device_fingerprint; /* e.g. GL vendor, renderer, version, binary format */
  const char* options;            /* compile options and code-changing env values */
  const void* source;             /* the full generated source */
  size_t source_size;
} sparkle_blob_key;

/* since v1.1: events a plugin reports for the cache statistics. */
typedef enum sparkle_cache_event {
  SPARKLE_CACHE_MEMORY_HIT = 0, /* a live program was reused */
  SPARKLE_CACHE_DISK_HIT = 1,   /* loaded from a blob; ms = time it took */
  SPARKLE_CACHE_COMPILE = 2     /* compiled from source; ms = compile time */
} sparkle_cache_event;

/* What the host offers to a plugin. Valid until the plugin's shutdown. */
typedef struct sparkle_host_services {
  uint32_t struct_size;
  uint32_t abi_version;
  /* Builds an error to return; the host takes ownership. */
  sparkle_status (*make_status)(sparkle_code code, const char* message);
  /* One log line; the host adds the plugin name and a thread tag. */
  void (*log)(sparkle_log_level level, const char* plugin, const char* message);

  /* since v1.1 (check struct_size): the persistent blob store. All may be
   * called from any thread; none throws or fails loudly. */
  /* A copy of the stored payload (release with blob_release), or NULL on a
   * miss. Corrupt, truncated or foreign entries are misses (and reported
   * once on stderr by the host). */
  void* (*blob_get)(const sparkle_blob_key* key, size_t* size);
  void (*blob_release)(void* data);
  /* Stores a payload. compile_ms is what producing it cost (reported as time
   * saved by later hits). Full or read-only stores skip it with a warning. */
  void (*blob_put)(const sparkle_blob_key* key, const void* data, size_t size, double compile_ms);
  /* The device refused a payload blob_get returned (driver update): the host
   * drops the entry; the plugin recompiles and puts a new one. */
  void (*blob_reject)(const sparkle_blob_key* key, const char* why);
  void (*cache_event)(sparkle_cache_event event, double ms);
} sparkle_host_services;

/* since v1.2: sparkle_conv2d_desc.flags. */
/* The caller promises that the weights at a given address do not change
 * between calls of this plan (inference with fixed weights). A plugin may
 * then keep a transformed copy (packed weights, a device upload) keyed by
 * the weight buffer's address, and reuse it. A hint: plugins built for
 * v1.0/1.1 ignore it, and ignoring it is always correct. */
#define SPARKLE_CONV2D_CONSTANT_WEIGHTS 1u

/* A 2-D convolution. NCHW activations, KCRS weights (C per group), fp32.
 * The host validates every field before a plugin sees it. */
typedef struct sparkle_conv2d_desc {
  uint32_t struct_size;
  uint32_t flags;     /* since v1.2: SPARKLE_CONV2D_* bits (was reserved, always 0) */
  int64_t n, c, h, w; /* input */
  int64_t k, r, s;    /* output channels, filter height, filter width */
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t dilation_h, dilation_w;
  int64_t groups;
  int32_t has_bias;     /* bias has k elements */
  int32_t relu;         /* max(0, y) after the bias */
  int64_t out_h, out_w; /* filled in by the host from the fields above */
} sparkle_conv2d_desc;

typedef enum sparkle_device_kind {
  SPARKLE_DEVICE_CPU = 0,
  SPARKLE_DEVICE_GPU = 1,
  SPARKLE_DEVICE_SOFTWARE_GPU = 2, /* a GPU API on the CPU (llvmpipe) */
  SPARKLE_DEVICE_SIMULATED = 3     /* test devices */
} sparkle_device_kind;

/* One key/value property of a device, for listing. */
typedef struct sparkle_property {
  const char* key;
  const char* value;
} sparkle_property;

/* Static description of a device. Strings belong to the plugin and stay
 * valid until shutdown. */
typedef struct sparkle_device_info {
  uint32_t struct_size;
  sparkle_device_kind kind;
  const char* description; /* human readable, e.g. "NVIDIA H100 (GL 4.5)" */
  /* Stable identity of the hardware + driver; changes when code compiled for
   * it may no longer be valid. Used to key caches and learned timings. */
  const char* fingerprint;
  const sparkle_property* properties;
  size_t property_count;
} sparkle_device_info;

typedef struct sparkle_device_t* sparkle_device;
typedef struct sparkle_buffer_t* sparkle_buffer;
typedef struct sparkle_plan_t* sparkle_plan;
typedef struct sparkle_fence_t* sparkle_fence;
typedef struct sparkle_queue_t* sparkle_queue; /* since v1.3 */

/* since v1.3: where a buffer's memory lives. */
typedef enum sparkle_memory_kind {
  SPARKLE_MEMORY_DEVICE = 0,  /* device-local; what buffer_create gives */
  SPARKLE_MEMORY_UPLOAD = 1,  /* host memory the device reads fast (upload
                                 staging, like CUDA's pinned memory);
                                 mapped for its whole life (buffer_map) */
  SPARKLE_MEMORY_READBACK = 2 /* host memory the device writes fast
                                 (readback staging); mapped likewise */
} sparkle_memory_kind;

/* since v1.3: what buffer_create_ex makes. */
typedef struct sparkle_buffer_desc {
  uint32_t struct_size;
  uint32_t kind; /* sparkle_memory_kind */
  size_t bytes;  /* logical size; for a tensor 4 x the product of dims */
  /* 0: plain bytes. 1 to 4: an fp32 tensor with these dims (an activation
   * is N, C, H, W). A plugin may keep a tensor of SPARKLE_MEMORY_DEVICE in
   * a layout of its own (blocked channels, say) as long as every write,
   * read and copy through this ABI sees the dense row-major layout, whose
   * byte offsets they take. */
  uint32_t rank;
  int64_t dims[4];
} sparkle_buffer_desc;

/* since v1.3: queue_create flags. */
#define SPARKLE_QUEUE_TRANSFER 1u /* hint: mostly copies (a copy engine may serve it) */

/* since v1.4: what a plugin says about one kernel variant of an op, so that
 * a host-side tuner (core/tune) can rank variants with a model before it
 * measures them. Every number is an estimate for the whole call; 0 means
 * "unknown" and the tuner then leaves that term out. Strings belong to the
 * plugin and stay valid until shutdown. */
typedef struct sparkle_variant_info {
  uint32_t struct_size;
  uint32_t flags;        /* SPARKLE_VARIANT_* bits */
  const char* name;      /* stable for one plugin build and device, e.g.
                            "gl_tiled_128x64x8_8x8_v4"; plan_kernel_name of its plans */
  const char* family;    /* variants of one algorithm share it ("gemm", "winograd4") */
  uint64_t work_groups;  /* work groups (CPU: tasks) of the largest pass */
  uint32_t group_size;   /* invocations per work group */
  uint32_t shared_bytes; /* shared memory per work group */
  uint32_t registers;    /* estimated 32-bit registers per invocation */
  uint32_t passes;       /* dispatches per call */
  double flops;          /* arithmetic done, padding and transforms included */
  double bytes;          /* device memory traffic, workspaces included */
  double efficiency;     /* plugin's guess of the fraction of peak a full
                            device reaches with this kernel (0..1] */
} sparkle_variant_info;

/* since v1.4: sparkle_variant_info.flags. */
#define SPARKLE_VARIANT_DEFAULT 1u /* what plan_conv2d picks without a tuning record */

/* The plugin's descriptor, returned by the entry point. */
typedef struct sparkle_plugin {
  uint32_t struct_size;
  uint32_t abi_version; /* SPARKLE_PLUGIN_ABI_VERSION the plugin was built with */
  const char* name;     /* backend name, used in device names: "cpu" */
  const char* version;
  const char* build_id; /* changes whenever generated code may change */

  /* Called once before anything else. A plugin whose hardware is absent
   * succeeds and reports zero devices. A plugin validates its environment
   * variables here: SPARKLE_INVALID_ARGUMENT with a message naming the
   * variable is a configuration error, which the host reports instead of
   * starting (an Engine is not made); any other failure only rejects the
   * plugin. */
  sparkle_status (*init)(const sparkle_host_services* host);
  /* Called once, last. Every device has been closed. */
  void (*shutdown)(void);

  size_t (*device_count)(void);
  /* Why there are zero devices ("no EGL library"); NULL when there are some. */
  const char* (*unavailable_reason)(void);
  sparkle_status (*device_info)(size_t index, sparkle_device_info* out);
  sparkle_status (*open_device)(size_t index, sparkle_device* out);
  void (*close_device)(sparkle_device device);

  /* SPARKLE_OK if the device can run the op, SPARKLE_UNSUPPORTED (with a
   * reason) if not. Must be cheap: the selector calls it per op. */
  sparkle_status (*supports_conv2d)(sparkle_device device, const sparkle_conv2d_desc* desc);

  /* Device memory. */
  sparkle_status (*buffer_create)(sparkle_device device, size_t bytes, sparkle_buffer* out);
  /* optional: wrap caller memory without a copy (host-memory devices). The
   * memory outlives the buffer. */
  sparkle_status (*buffer_wrap_host)(sparkle_device device, void* host, size_t bytes,
                                     sparkle_buffer* out);
  void (*buffer_destroy)(sparkle_buffer buffer);
  sparkle_status (*buffer_upload)(sparkle_buffer buffer, size_t offset, const void* src,
                                  size_t bytes);
  sparkle_status (*buffer_download)(sparkle_buffer buffer, size_t offset, void* dst, size_t bytes);

  /* A plan holds everything a descriptor needs that does not depend on the
   * data: the chosen kernel, scratch sizes, packed-weight slots. */
  sparkle_status (*plan_conv2d)(sparkle_device device, const sparkle_conv2d_desc* desc,
                                sparkle_plan* out);
  void (*plan_destroy)(sparkle_plan plan);
  /* A short name of the kernel the plan uses, for logs and benchmarks. */
  const char* (*plan_kernel_name)(sparkle_plan plan);

  /* Enqueue y = conv(x, w) + bias. `bias` is NULL unless desc->has_bias.
   * Returns a fence that signals when y is complete. */
  sparkle_status (*enqueue_conv2d)(sparkle_plan plan, sparkle_buffer x, sparkle_buffer w,
                                   sparkle_buffer bias, sparkle_buffer y, sparkle_fence* out);
  /* 1 if signalled, 0 if not yet. */
  int (*fence_poll)(sparkle_fence fence);
  /* Blocks until signalled; returns the op's error if it failed. */
  sparkle_status (*fence_wait)(sparkle_fence fence);
  /* optional: device time of the fenced work in ns after fence_wait,
   * or -1 if the device cannot time it. */
  int64_t (*fence_elapsed_ns)(sparkle_fence fence);
  void (*fence_destroy)(sparkle_fence fence);

  /* ---- since v1.3: queues, fences with wait lists, memory kinds and
   * asynchronous transfers (the shape of oneDNN's interop API: a list of
   * fences in, one fence out). Optional as a group: a plugin that leaves
   * queue_create NULL, or whose queue_create fails for a device, is driven
   * synchronously through the v1.0 members and the host adapts.
   *
   * Rules for the group:
   *  - A queue runs its work in enqueue order. Work on different queues of
   *    one device may overlap; order between them comes from wait lists.
   *  - Every enqueue_* first waits for each fence in waits[0..wait_count)
   *    (from any queue of the same device), then runs, and returns a new
   *    fence (fence_poll/wait/elapsed_ns/destroy above) for its own
   *    completion. The plugin reads the wait list during the call: the
   *    host may destroy those fences as soon as it returns. A plugin need
   *    not propagate a failure through a wait list; the host does.
   *  - The host destroys a buffer, plan or queue only once every fence of
   *    work that uses it has signalled.
   *  - fence_wait must not need the queue's thread to make progress on
   *    other queues: the host waits on one thread while it enqueues on
   *    others. */
  sparkle_status (*queue_create)(sparkle_device device, uint32_t flags, sparkle_queue* out);
  void (*queue_destroy)(sparkle_queue queue);
  /* A buffer of a memory kind (and, for tensors, dims). SPARKLE_UNSUPPORTED
   * for a kind the device does not have. */
  sparkle_status (*buffer_create_ex)(sparkle_device device, const sparkle_buffer_desc* desc,
                                     sparkle_buffer* out);
  /* optional within the group: the persistent CPU address of an UPLOAD or
   * READBACK buffer (or of any buffer of a host-memory device), valid until
   * buffer_destroy; NULL when it has none. Host writes through it are seen
   * by work enqueued after them; device writes are seen once the fence of
   * the work that made them has signalled. */
  void* (*buffer_map)(sparkle_buffer buffer);
  /* dst[offset..+bytes) = src. src must stay valid and unchanged until the
   * returned fence signals. */
  sparkle_status (*enqueue_write)(sparkle_queue queue, sparkle_buffer dst, size_t offset,
                                  const void* src, size_t bytes, const sparkle_fence* waits,
                                  size_t wait_count, sparkle_fence* out);
  /* dst holds src[offset..+bytes) once the returned fence has signalled. */
  sparkle_status (*enqueue_read)(sparkle_queue queue, sparkle_buffer src, size_t offset, void* dst,
                                 size_t bytes, const sparkle_fence* waits, size_t wait_count,
                                 sparkle_fence* out);
  /* Device-side copy between two buffers of the device (staging included). */
  sparkle_status (*enqueue_copy)(sparkle_queue queue, sparkle_buffer src, size_t src_offset,
                                 sparkle_buffer dst, size_t dst_offset, size_t bytes,
                                 const sparkle_fence* waits, size_t wait_count,
                                 sparkle_fence* out);
  /* enqueue_conv2d on a queue, after the wait list. */
  sparkle_status (*enqueue_conv2d_on)(sparkle_queue queue, sparkle_plan plan, sparkle_buffer x,
                                      sparkle_buffer w, sparkle_buffer bias, sparkle_buffer y,
                                      const sparkle_fence* waits, size_t wait_count,
                                      sparkle_fence* out);

  /* ---- since v1.4: kernel variants, so that any backend can be tuned by
   * measurement (core/tune, `sparkle-run tune`). Optional as a group: a
   * plugin that leaves conv2d_variant_count NULL has one kernel per op and
   * is planned through plan_conv2d alone.
   *  - The list is a function of (device, desc, plugin build) only, so that
   *    a name recorded by one process means the same kernel in the next.
   *  - Every variant listed computes the op correctly (within the fp32
   *    conformance bound); a tuner may pick any of them. */
  /* How many variants the device offers for desc (0: none beyond plan_conv2d). */
  size_t (*conv2d_variant_count)(sparkle_device device, const sparkle_conv2d_desc* desc);
  /* Fills out (out->struct_size set by the caller) for variant index. */
  sparkle_status (*conv2d_variant_info)(sparkle_device device, const sparkle_conv2d_desc* desc,
                                        size_t index, sparkle_variant_info* out);
  /* plan_conv2d with the kernel of variant index. SPARKLE_UNSUPPORTED (with
   * the reason, e.g. a compile failure) when it cannot be built here. */
  sparkle_status (*plan_conv2d_variant)(sparkle_device device, const sparkle_conv2d_desc* desc,
                                        size_t index, sparkle_plan* out);
} sparkle_plugin;

/* The size of a v1.0 descriptor: the smallest struct_size a host accepts. */
#define SPARKLE_PLUGIN_V1_0_SIZE \
  (offsetof(sparkle_plugin, fence_destroy) + sizeof(void (*)(sparkle_fence)))

/* The only exported symbol. The host passes its ABI version; a plugin that
 * cannot serve that major version returns NULL. */
typedef const sparkle_plugin* (*sparkle_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* SPARKLE_PLUGIN_H */
