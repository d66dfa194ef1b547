"""The layout of the timers' program and state in a lane (:mod:`irqlab.engine.kernel_timers`
describes it), apart so that packing a program (:mod:`irqlab.engine.kernelprog`) does not
import Numba."""

TM_PIT, TM_RTC, TM_STIMER = 1, 2, 3  # a timer's kind (TJ_KIND)
TP_NT, TP_NDS, TP_NRTC, TP_DEV = range(4)  # the program's counts, then D device entries
TJ_DEV, TJ_KIND, TJ_P, TJ_PERIOD, TJ_SLOT = range(5)  # device, kind, reinject/slew/retry, period, RTC slot
NTP = 5
(SJ_PIT_PEND, SJ_PIT_ACK, SJ_ST_RETRY, SJ_ST_SLOT, SJ_ST_EXP, SJ_ST_DUE, SJ_RTC_COAL, SJ_RTC_ACKS,
 SJ_RTC_EOI) = range(9)
NTS = 9
DS_ON, DS_START, DS_BEGIN = range(3)
NDS = 3
H_HELD, H_REM, H_MODE, H_RUN, H_KICK = range(5)
NH = 5
