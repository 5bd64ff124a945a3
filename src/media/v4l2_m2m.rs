//! The ioctl side of [`super::m2m::M2mDevice`]: a V4L2 memory-to-memory device node (the Pi 3/4's
//! `bcm2835-codec-encode`, usually `/dev/video11`) through raw ioctls (`v4l`'s `ioctl`, `mmap`
//! and the kernel's structures from `v4l::v4l_sys`), multi-planar (`VIDEO_M2M_MPLANE`, what
//! bcm2835 is) or single-planar, mmap'd buffers, opened non-blocking and waited on with
//! `poll()`. Dropping it stops both queues, unmaps, frees the buffers and closes, never panics.
//!
//! Not tested here: these machines have no V4L2 device and cannot load a kernel module (vicodec
//! would be the one). Everything above it runs against the synthetic device.

use std::io;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::time::Duration;

use v4l::v4l2;
use v4l::v4l2::vidioc;
use v4l::v4l_sys as k;

use super::camera::FourCc;
use super::m2m::{Dequeued, M2mDevice, PlaneFormat, Queue, RawFormat, Ready};
use super::MediaError;

/// One mmap'd plane.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

/// An open M2M device. See the module.
pub struct V4l2M2m {
    name: String,
    fd: c_int,
    mplane: bool,
    output: Vec<Vec<Mapping>>,
    capture: Vec<Vec<Mapping>>,
    /// Planes of the OUTPUT format (1 for single-planar).
    output_planes: usize,
}

// SAFETY: the mappings are this struct's alone (nothing else has the pointers) and are only
// touched through `&mut self`/`&self`; the file descriptor may be used from any thread.
unsafe impl Send for V4l2M2m {}

fn zeroed<T>() -> T {
    // SAFETY: only used for the kernel's plain-data structures (integers, arrays, unions of
    // them, raw pointers), for which all-zero is a valid value.
    unsafe { mem::zeroed() }
}

impl V4l2M2m {
    /// Opens the M2M device at `path`.
    pub fn open(path: &Path) -> Result<V4l2M2m, MediaError> {
        let name = path.display().to_string();
        let fd = v4l2::open(path, libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .map_err(|e| MediaError::Open(format!("H.264 encoder {name}: cannot open: {e}")))?;
        let mut device = V4l2M2m {
            name,
            fd,
            mplane: false,
            output: Vec::new(),
            capture: Vec::new(),
            output_planes: 1,
        };
        let mut caps: k::v4l2_capability = zeroed();
        device
            .ioctl(vidioc::VIDIOC_QUERYCAP, &mut caps)
            .map_err(|e| {
                MediaError::Unsupported(format!(
                    "H.264 encoder {}: not a V4L2 device: {e}",
                    device.name
                ))
            })?;
        let flags = if caps.capabilities & k::V4L2_CAP_DEVICE_CAPS != 0 {
            caps.device_caps
        } else {
            caps.capabilities
        };
        device.mplane = if flags & k::V4L2_CAP_VIDEO_M2M_MPLANE != 0 {
            true
        } else if flags & k::V4L2_CAP_VIDEO_M2M != 0 {
            false
        } else {
            return Err(MediaError::Unsupported(format!(
                "H.264 encoder {}: not a memory-to-memory device",
                device.name
            )));
        };
        Ok(device)
    }

    fn ioctl<T>(&self, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is the structure `request` is defined with (the callers pair them as
        // videodev2.h does); any pointers in it point to memory that lives across the call.
        unsafe { v4l2::ioctl(self.fd, request, (arg as *mut T).cast::<c_void>()) }
    }

    fn buf_type(&self, queue: Queue) -> u32 {
        match (queue, self.mplane) {
            (Queue::Output, true) => k::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            (Queue::Output, false) => k::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT,
            (Queue::Capture, true) => k::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
            (Queue::Capture, false) => k::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
        }
    }

    fn buffers(&mut self, queue: Queue) -> &mut Vec<Vec<Mapping>> {
        match queue {
            Queue::Output => &mut self.output,
            Queue::Capture => &mut self.capture,
        }
    }

    fn unmap(&mut self, queue: Queue) {
        for buffer in self.buffers(queue).drain(..) {
            for m in buffer {
                // SAFETY: mapped by `request_buffers` with this length; no slice of it outlives
                // the `&mut self` this runs under.
                if let Err(e) = unsafe { v4l2::munmap(m.ptr.cast(), m.len) } {
                    log::debug!("H.264 encoder: unmapping a buffer: {e}");
                }
            }
        }
    }

    /// Sets a format on `queue`: `(fourcc, width, height, sizeimage)`; returns the driver's.
    fn set_format(
        &mut self,
        queue: Queue,
        (fourcc, width, height, sizeimage): (FourCc, u32, u32, u32),
    ) -> io::Result<RawFormat> {
        let mut f: k::v4l2_format = zeroed();
        f.type_ = self.buf_type(queue);
        // SAFETY (the union accesses): the member read is the one `type_` selects.
        if self.mplane {
            let p = unsafe { &mut f.fmt.pix_mp };
            p.width = width;
            p.height = height;
            p.pixelformat = fourcc.to_u32();
            p.field = k::v4l2_field_V4L2_FIELD_NONE;
            if sizeimage > 0 {
                p.num_planes = 1;
                p.plane_fmt[0].sizeimage = sizeimage;
            }
        } else {
            let p = unsafe { &mut f.fmt.pix };
            p.width = width;
            p.height = height;
            p.pixelformat = fourcc.to_u32();
            p.field = k::v4l2_field_V4L2_FIELD_NONE;
            p.sizeimage = sizeimage;
        }
        self.ioctl(vidioc::VIDIOC_S_FMT, &mut f)?;
        Ok(if self.mplane {
            let p = unsafe { &f.fmt.pix_mp };
            let n = usize::from(p.num_planes).clamp(1, p.plane_fmt.len());
            RawFormat {
                fourcc: FourCc::from_u32(p.pixelformat),
                width: p.width,
                height: p.height,
                planes: p.plane_fmt[..n]
                    .iter()
                    .map(|pf| PlaneFormat {
                        bytesperline: pf.bytesperline,
                        sizeimage: pf.sizeimage,
                    })
                    .collect(),
            }
        } else {
            let p = unsafe { &f.fmt.pix };
            RawFormat {
                fourcc: FourCc::from_u32(p.pixelformat),
                width: p.width,
                height: p.height,
                planes: vec![PlaneFormat {
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                }],
            }
        })
    }

    /// A `v4l2_buffer` for buffer `index` of `queue`, its planes in `planes`.
    fn buffer(
        &self,
        queue: Queue,
        index: u32,
        planes: &mut [k::v4l2_plane; k::VIDEO_MAX_PLANES as usize],
    ) -> k::v4l2_buffer {
        let mut b: k::v4l2_buffer = zeroed();
        b.index = index;
        b.type_ = self.buf_type(queue);
        b.memory = k::v4l2_memory_V4L2_MEMORY_MMAP;
        b.field = k::v4l2_field_V4L2_FIELD_NONE;
        if self.mplane {
            b.length = planes.len() as u32;
            b.m.planes = planes.as_mut_ptr();
        }
        b
    }

    fn queue_buffer(&mut self, queue: Queue, index: u32, bytesused: &[u32]) -> io::Result<()> {
        let mappings = match queue {
            Queue::Output => &self.output,
            Queue::Capture => &self.capture,
        };
        let lengths: Vec<usize> = mappings
            .get(index as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?
            .iter()
            .map(|m| m.len)
            .collect();
        let mut planes: [k::v4l2_plane; k::VIDEO_MAX_PLANES as usize] = zeroed();
        let mut b = self.buffer(queue, index, &mut planes);
        if self.mplane {
            b.length = lengths.len() as u32;
            for (i, len) in lengths.iter().enumerate() {
                planes[i].length = *len as u32;
                planes[i].bytesused = bytesused.get(i).copied().unwrap_or(0);
            }
        } else {
            b.bytesused = bytesused.first().copied().unwrap_or(0);
            b.length = lengths.first().copied().unwrap_or(0) as u32;
        }
        self.ioctl(vidioc::VIDIOC_QBUF, &mut b)
    }
}

impl M2mDevice for V4l2M2m {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_coded_format(&mut self, width: u32, height: u32, sizeimage: u32) -> io::Result<u32> {
        let set = self.set_format(Queue::Capture, (FourCc::H264, width, height, sizeimage))?;
        if set.fourcc != FourCc::H264 {
            return Err(io::Error::other(format!(
                "the driver set {} for H.264",
                set.fourcc
            )));
        }
        Ok(set.planes.first().map_or(0, |p| p.sizeimage))
    }

    fn set_raw_format(&mut self, fourcc: FourCc, width: u32, height: u32) -> io::Result<RawFormat> {
        let set = self.set_format(Queue::Output, (fourcc, width, height, 0))?;
        self.output_planes = set.planes.len();
        Ok(set)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()> {
        let mut p: k::v4l2_streamparm = zeroed();
        p.type_ = self.buf_type(Queue::Output);
        // SAFETY: `output` is the member an OUTPUT type selects.
        {
            p.parm.output.timeperframe = k::v4l2_fract {
                numerator: 1,
                denominator: fps.max(1),
            };
        }
        self.ioctl(vidioc::VIDIOC_S_PARM, &mut p)
    }

    fn set_control(&mut self, id: u32, value: i32) -> io::Result<()> {
        let mut control: k::v4l2_ext_control = zeroed();
        control.id = id;
        control.__bindgen_anon_1.value = value;
        let mut controls: k::v4l2_ext_controls = zeroed();
        // The control's class (V4L2_CTRL_ID2WHICH): what kernels before `which` expect too.
        controls.__bindgen_anon_1.ctrl_class = id & 0x0fff_0000;
        controls.count = 1;
        controls.controls = &mut control;
        self.ioctl(vidioc::VIDIOC_S_EXT_CTRLS, &mut controls)
    }

    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32> {
        self.unmap(queue);
        let mut r: k::v4l2_requestbuffers = zeroed();
        r.count = count;
        r.type_ = self.buf_type(queue);
        r.memory = k::v4l2_memory_V4L2_MEMORY_MMAP;
        self.ioctl(vidioc::VIDIOC_REQBUFS, &mut r)?;
        let mut mapped = Vec::new();
        for index in 0..r.count {
            let mut planes: [k::v4l2_plane; k::VIDEO_MAX_PLANES as usize] = zeroed();
            let mut b = self.buffer(queue, index, &mut planes);
            let result = self.ioctl(vidioc::VIDIOC_QUERYBUF, &mut b).and_then(|()| {
                // (length, offset) of each plane.
                let spans: Vec<(usize, i64)> = if self.mplane {
                    planes[..(b.length as usize).min(planes.len())]
                        .iter()
                        // SAFETY: MMAP buffers fill `mem_offset`.
                        .map(|p| (p.length as usize, i64::from(unsafe { p.m.mem_offset })))
                        .collect()
                } else {
                    // SAFETY: MMAP buffers fill `offset`.
                    vec![(b.length as usize, i64::from(unsafe { b.m.offset }))]
                };
                let mut maps = Vec::new();
                for (len, offset) in spans {
                    // SAFETY: maps the driver's buffer as QUERYBUF describes it; unmapped in
                    // `unmap`.
                    let ptr = unsafe {
                        v4l2::mmap(
                            std::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_SHARED,
                            self.fd,
                            offset as libc::off_t,
                        )
                    };
                    match ptr {
                        Ok(ptr) => maps.push(Mapping {
                            ptr: ptr.cast(),
                            len,
                        }),
                        Err(e) => {
                            mapped.push(maps);
                            return Err(e);
                        }
                    }
                }
                mapped.push(maps);
                Ok(())
            });
            if let Err(e) = result {
                *self.buffers(queue) = mapped;
                self.unmap(queue);
                return Err(e);
            }
        }
        *self.buffers(queue) = mapped;
        Ok(r.count)
    }

    fn output_planes(&mut self, index: u32) -> io::Result<Vec<&mut [u8]>> {
        let buffer = self
            .output
            .get(index as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(buffer
            .iter()
            // SAFETY: a live mapping of `len` bytes; the slices borrow `self` mutably, so the
            // mapping outlives them and nothing else touches it meanwhile.
            .map(|m| unsafe { std::slice::from_raw_parts_mut(m.ptr, m.len) })
            .collect())
    }

    fn capture_data(&self, index: u32) -> io::Result<&[u8]> {
        let m = self
            .capture
            .get(index as usize)
            .and_then(|b| b.first())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a live mapping of `len` bytes, borrowed with `self`.
        Ok(unsafe { std::slice::from_raw_parts(m.ptr, m.len) })
    }

    fn queue_output(&mut self, index: u32, bytesused: &[u32]) -> io::Result<()> {
        self.queue_buffer(Queue::Output, index, bytesused)
    }

    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        self.queue_buffer(Queue::Capture, index, &[])
    }

    fn dequeue(&mut self, queue: Queue) -> io::Result<Option<Dequeued>> {
        let mut planes: [k::v4l2_plane; k::VIDEO_MAX_PLANES as usize] = zeroed();
        let mut b = self.buffer(queue, 0, &mut planes);
        match self.ioctl(vidioc::VIDIOC_DQBUF, &mut b) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
        let (offset, bytesused) = if self.mplane {
            (planes[0].data_offset, planes[0].bytesused)
        } else {
            (0, b.bytesused)
        };
        Ok(Some(Dequeued {
            index: b.index,
            offset,
            bytesused,
            flags: b.flags,
        }))
    }

    fn stream(&mut self, queue: Queue, on: bool) -> io::Result<()> {
        let mut typ = self.buf_type(queue) as c_int;
        let request = if on {
            vidioc::VIDIOC_STREAMON
        } else {
            vidioc::VIDIOC_STREAMOFF
        };
        self.ioctl(request, &mut typ)
    }

    fn poll(&mut self, timeout: Duration) -> io::Result<Ready> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN | libc::POLLRDNORM | libc::POLLOUT | libc::POLLWRNORM,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Ready::default())
            } else {
                Err(e)
            };
        }
        let ready = Ready {
            output: pfd.revents & (libc::POLLOUT | libc::POLLWRNORM) != 0,
            capture: pfd.revents & (libc::POLLIN | libc::POLLRDNORM) != 0,
        };
        if ready == Ready::default() && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Err(io::Error::other(
                "the device reports an error (poll: POLLERR), with buffers queued",
            ));
        }
        Ok(ready)
    }
}

impl Drop for V4l2M2m {
    fn drop(&mut self) {
        for queue in [Queue::Output, Queue::Capture] {
            let _ = self.stream(queue, false);
            self.unmap(queue);
            let mut r: k::v4l2_requestbuffers = zeroed();
            r.type_ = self.buf_type(queue);
            r.memory = k::v4l2_memory_V4L2_MEMORY_MMAP;
            let _ = self.ioctl(vidioc::VIDIOC_REQBUFS, &mut r);
        }
        if let Err(e) = v4l2::close(self.fd) {
            log::debug!("H.264 encoder {}: closing: {e}", self.name);
        }
    }
}
